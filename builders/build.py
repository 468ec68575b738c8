"""Run one job: load the model, score the text set, write one Parquet file per entry.

Files are written atomically, then a marker records the job as done, so a run killed at any
point resumes without losing or duplicating an entry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

from llkl_db.builders.jobs import Job
from llkl_db.errors import LlklError
from llkl_db.io.atomic import write_text_atomic
from llkl_db.io.folder import DatasetFolder, entry_file_name, entry_kind
from llkl_db.io.vectors import entry_id
from llkl_db.textsets import TextSet


@dataclass(frozen=True)
class BuildOptions:
    """How to run jobs, the same for every job of a run."""

    device: str = "auto"
    batch_size: int | None = None
    max_length: int | None = None
    contributor: str | None = None
    progress: bool = True
    bos_policy: str = "auto"  # or "skip-first": the 2025 code's scoring, to join an imported 2025 dataset


def done_marker(out: Path, job: Job) -> Path:
    """The file that records ``job`` as finished in the build folder ``out``."""
    return DatasetFolder(out).done_dir / (entry_file_name(job.key) + ".json")


def is_done(out: Path, job: Job) -> bool:
    return done_marker(out, job).is_file()


def library_versions() -> str:
    names = ("llkl-db", "torch", "transformers", "numpy")
    found = []
    for name in names:
        try:
            found.append(f"{name}={importlib_metadata.version(name)}")
        except importlib_metadata.PackageNotFoundError:
            pass
    return " ".join(found)


def entry_provenance(job: Job, loaded, texts: TextSet, bos_policy: str, contributor: str | None = None) -> dict:
    """The metadata every entry of ``job`` records: what was loaded, on which texts, how scored."""
    return {
        "model_id": job.model_id,
        "revision": job.revision,
        "step": job.training_step,
        "n_layers": loaded.n_layers,
        "variant": job.variant,
        "seed": job.seed,
        "base_model": job.base_model or loaded.base_model,
        "model_type": job.model_type or loaded.model_type,
        "n_params": loaded.n_params,
        "text_set": texts.name,
        "text_set_sha256": texts.sha256,
        "bos_policy": bos_policy,
        "tokenizer": loaded.tokenizer_name,
        "model_sha": loaded.model_sha,
        "library_versions": library_versions(),
        "device": loaded.device,
        "dtype": loaded.dtype,
        "created_at": datetime.now(UTC),
        "contributor": contributor or os.environ.get("LLKL_DB_CONTRIBUTOR"),
    }


def resolve_source(job: Job) -> str:
    """What load_model gets: 'offline:NAME' becomes the packaged model's converted folder."""
    source = job.source or job.model_id
    if source.startswith("offline:"):
        from llkl_db.builders.models import offline_model

        return str(offline_model(source.split(":", 1)[1]))
    return source


# what a partial shard (``place --save``) must share with a build to be completed by it
PARTIAL_MATCH = ("entry_id", "model_id", "revision", "variant", "text_set_sha256", "bos_policy", "dtype", "model_sha")


def reusable_partial(path: Path, texts: TextSet, expected: dict, options: BuildOptions):
    """The partial shard at ``path`` (left by ``place --save``) when it is this build's entry on
    this text set, scored the same way; None when there is none. A mismatch is refused."""
    from llkl_db.place.shard import read_vector

    if not path.exists():
        return None
    found = read_vector(path, texts.key, len(texts))
    differ = [(key, found.meta.get(key), expected.get(key)) for key in PARTIAL_MATCH]
    # place scores with the model's context as its window, and records token counts
    differ += [("max_length", None, options.max_length), ("n_tokens", found.n_tokens is not None, True)]
    for key, theirs, ours in differ:
        if theirs != ours:
            raise LlklError(
                f"{path}: a partial shard with {key} {theirs}, this build's is {ours}; "
                "remove it or build into another folder"
            )
    return found


def run_job(job: Job, texts: TextSet, out: Path, options: BuildOptions) -> list[Path]:
    """Load, score and write the entries of ``job`` into ``out``; returns the files written.

    A partial shard of the job's output entry in ``out`` (``place --save out``) with the same
    provenance is completed: only the texts it lacks are scored, and it is removed once the full
    entry is written."""
    import numpy as np

    from llkl_db.builders.models import load_model
    from llkl_db.builders.scoring import score_texts
    from llkl_db.builders.scoring.score import prefix_token

    loaded = load_model(
        resolve_source(job),
        revision=None if job.source else job.revision,
        dtype=job.dtype,
        device=options.device,
        variant=job.variant,
        trust_remote_code=job.trust_remote_code,
        gguf_file=job.gguf_file,
    )
    n_layers = loaded.n_layers
    layers = list(range(n_layers or 0)) if job.layers == "all" else list(job.layers)
    folder = DatasetFolder(out)
    output_id = entry_id(job.model_id, job.revision, None, job.variant)
    partial_path = folder.partial_path(output_id)
    partial = None
    if not layers:  # a partial shard holds the output only; logit-lens layers need every text
        policy = options.bos_policy if options.bos_policy == "skip-first" else prefix_token(loaded.tokenizer)[1]
        expected = {**entry_provenance(job, loaded, texts, policy), "entry_id": output_id}
        partial = reusable_partial(partial_path, texts, expected, options)
    todo = np.arange(len(texts)) if partial is None else np.setdiff1d(np.arange(len(texts)), partial.text_ids)
    result = score_texts(
        loaded.model,
        loaded.tokenizer,
        [texts.texts[i] for i in todo],
        layers=layers,
        batch_size=options.batch_size,
        max_length=options.max_length,
        progress=options.progress,
        bos_policy=options.bos_policy,
    )
    loglik_by_layer, n_tokens = result.loglik, result.n_tokens
    if partial is not None:
        full = np.empty(len(texts))
        full[partial.text_ids], full[todo] = partial.loglik, result.loglik[None]
        n_tokens = np.empty(len(texts), np.int64)
        n_tokens[partial.text_ids], n_tokens[todo] = partial.n_tokens, result.n_tokens
        loglik_by_layer = {None: full}
    common = {
        **entry_provenance(job, loaded, texts, result.bos_policy, options.contributor),
        "n_tokens": n_tokens,
    }
    written = []
    for layer, loglik in loglik_by_layer.items():
        eid = entry_id(job.model_id, job.revision, layer, job.variant)
        row = {**common, "entry_id": eid, "layer": layer, "loglik": loglik}
        path = folder.entry_path(eid, entry_kind(common["step"], layer, job.variant))
        folder.write_entries(path, [row])
        written.append(path)
    marker = {
        "job": job.to_dict(),
        "files": [str(p.relative_to(out)) for p in written],
        "tokens_per_second": result.tokens_per_second,
        "seconds": result.seconds,
        "finished_at": datetime.now(UTC).isoformat(),
        "texts_from_partial_shard": 0 if partial is None else partial.n_scored,
    }
    write_text_atomic(done_marker(out, job), json.dumps(marker, indent=2) + "\n")
    partial_path.unlink(missing_ok=True)  # its values are in the full entry now
    return written


def check_out_dir(out: Path, texts: TextSet, overwrite: bool = False) -> None:
    """Refuse a folder that holds someone else's files or another text set; copy the text set in
    on first use."""
    folder = DatasetFolder(out)
    folder.check_writable(overwrite)
    folder.add_text_set(texts)
