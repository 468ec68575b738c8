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


def run_job(job: Job, texts: TextSet, out: Path, options: BuildOptions) -> list[Path]:
    """Load, score and write the entries of ``job`` into ``out``; returns the files written."""
    from llkl_db.builders.models import load_model
    from llkl_db.builders.scoring import score_texts

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
    result = score_texts(
        loaded.model,
        loaded.tokenizer,
        texts.texts,
        layers=layers,
        batch_size=options.batch_size,
        max_length=options.max_length,
        progress=options.progress,
        bos_policy=options.bos_policy,
    )
    common = {
        **entry_provenance(job, loaded, texts, result.bos_policy, options.contributor),
        "n_tokens": result.n_tokens,
    }
    folder = DatasetFolder(out)
    written = []
    for layer, loglik in result.loglik.items():
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
    }
    write_text_atomic(done_marker(out, job), json.dumps(marker, indent=2) + "\n")
    return written


def check_out_dir(out: Path, texts: TextSet, overwrite: bool = False) -> None:
    """Refuse a folder that holds someone else's files or another text set; copy the text set in
    on first use."""
    folder = DatasetFolder(out)
    folder.check_writable(overwrite)
    folder.add_text_set(texts)
