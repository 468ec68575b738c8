"""Score a model on some texts of a dataset's text set for ``llkl-db place``, resumably.

The model is whatever ``build`` accepts (``single_model_plan``: Hub id and revision, local
folder, .gguf file, offline:NAME, variant); it is loaded like a build job and scored with the
builders' scorer, a chunk of texts at a time. With a save folder, the partial shard
(``llkl_db.place.shard``) is rewritten atomically after each chunk: an interrupted run resumes
from it, and ``place --vector`` reads it later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llkl_db.builders.build import entry_provenance, resolve_source
from llkl_db.builders.plan import single_model_plan
from llkl_db.errors import LlklError
from llkl_db.io.vectors import entry_id
from llkl_db.place.shard import PartialVector, partial_path, read_vector, write_partial
from llkl_db.textsets import TextSet

CHUNK_TEXTS = 16
# Rough scoring speed of a 135M-parameter model, tokens per second (measured: SmolLM2-135M on
# a 2-core CPU ~600); scaled inversely with the parameter count for the time estimate.
REFERENCE_RATE = {"cpu": 600.0, "cuda": 30_000.0}
REFERENCE_PARAMS = 135e6


@dataclass(frozen=True)
class ModelSpec:
    """What to score, as ``build`` takes it."""

    model: str
    revision: str = "main"
    variant: str | None = None
    dtype: str = "auto"
    model_id: str | None = None
    trust_remote_code: bool = False


def estimate_seconds(n_tokens: int, n_params: int | None, device: str) -> float:
    """A rough scoring time: tokens over a reference rate scaled by the model size."""
    rate = REFERENCE_RATE["cuda" if device.startswith("cuda") else "cpu"]
    rate *= REFERENCE_PARAMS / max(float(n_params or REFERENCE_PARAMS), 1e6)
    return n_tokens / rate


def score_for_place(
    spec: ModelSpec,
    texts: TextSet,
    text_ids: np.ndarray,
    bos_policies: set[str],
    save: Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    progress: bool = True,
    on_note: Callable[[str], None] | None = None,
) -> PartialVector:
    """Log-likelihoods of ``spec`` on the texts ``text_ids`` of ``texts``, refusing a BOS policy
    that is not the dataset's (``bos_policies``: those of its entries)."""
    from llkl_db.builders.models import load_model
    from llkl_db.builders.scoring.progress import TokenProgress
    from llkl_db.builders.scoring.score import prefix_token, score_texts

    say = on_note or (lambda _text: None)
    job = single_model_plan(
        spec.model,
        revision=spec.revision,
        variant=spec.variant,
        dtype=spec.dtype,
        model_id=spec.model_id,
        trust_remote_code=spec.trust_remote_code,
    ).jobs[0]
    eid = entry_id(job.model_id, job.revision, None, job.variant)
    wanted = np.unique(np.asarray(text_ids, dtype=np.int64))
    done_ids = np.empty(0, np.int64)
    done_ll = np.empty(0)
    done_tok = np.empty(0, np.int64)
    path = partial_path(save, eid) if save is not None else None
    if path is not None and path.exists():
        previous = read_vector(path, texts.key, len(texts))
        if previous.meta.get("entry_id") != eid:
            raise LlklError(f"{path}: holds {previous.meta.get('entry_id')}, not {eid}")
        done_ids, done_ll = previous.text_ids, previous.loglik
        done_tok = previous.n_tokens if previous.n_tokens is not None else np.zeros(done_ids.size, np.int64)
        say(f"resuming from {path}: {done_ids.size} text(s) already scored")
    todo = np.setdiff1d(wanted, done_ids)

    loaded = load_model(
        resolve_source(job),
        revision=None if job.source else job.revision,
        dtype=job.dtype,
        device=device,
        variant=job.variant,
        trust_remote_code=job.trust_remote_code,
        gguf_file=job.gguf_file,
    )
    _, policy = prefix_token(loaded.tokenizer)
    if bos_policies and policy not in bos_policies:
        raise LlklError(
            f"{spec.model} conditions the first token on {policy.upper()} (bos_policy {policy}), the dataset's "
            f"entries use {', '.join(sorted(bos_policies))}: their KL would measure the policy, not the models"
        )
    meta = {"entry_id": eid, **entry_provenance(job, loaded, texts, policy)}
    token_counts = [
        len(x) for x in loaded.tokenizer([texts.texts[i] for i in todo], add_special_tokens=False)["input_ids"]
    ]
    total = int(sum(token_counts))
    seconds = estimate_seconds(total, loaded.n_params, str(loaded.device))
    say(f"scoring {todo.size} text(s), {total:,} tokens, on {loaded.device}: about {_duration(seconds)}")
    ids, ll, tok = list(done_ids), list(done_ll), list(done_tok)
    with TokenProgress(total, enabled=progress, description=f"place {eid}") as bar:
        for start in range(0, todo.size, CHUNK_TEXTS):
            chunk = todo[start : start + CHUNK_TEXTS]
            result = score_texts(
                loaded.model, loaded.tokenizer, [texts.texts[i] for i in chunk], batch_size=batch_size, progress=False
            )
            ids.extend(chunk.tolist())
            ll.extend(result.loglik[None].tolist())
            tok.extend(result.n_tokens.tolist())
            bar.advance(int(result.n_tokens.sum()))
            if path is not None:
                write_partial(path, PartialVector(meta, np.asarray(ids), np.asarray(ll), np.asarray(tok)))
    vector = PartialVector(meta, np.asarray(ids, np.int64), np.asarray(ll), np.asarray(tok, np.int64))
    order = np.argsort(vector.text_ids)
    vector = PartialVector(meta, vector.text_ids[order], vector.loglik[order], vector.n_tokens[order])
    if path is not None and todo.size == 0 and not path.exists():
        write_partial(path, vector)
    return vector


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"
