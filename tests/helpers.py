"""Write real llkl-db dataset folders from arrays, with the library's own writers.

    >>> root = write_dataset(tmp_path, loglik)                       # K x N matrix, ids made up
    >>> root = write_dataset(tmp_path, loglik, rows=[{...}, ...])    # explicit entry metadata
    >>> ds = llkl_db.open(root)

Every row gets the required schema fields (text set name and sha256, bos_policy) unless given.
``files`` splits the entries over several vector files (``vectors/test/part-XXX.parquet``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llkl_db.io.metadata import DatasetMetadata, write_metadata
from llkl_db.io.texts import write_texts
from llkl_db.io.vectors import entry_id, write_vectors

TEXT_SET = "test-texts"


def make_texts(n: int, seed: int = 0) -> list[str]:
    """N distinct texts of 20..200 ASCII bytes."""
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega", "theta"]
    out = []
    for i in range(n):
        length = int(rng.integers(3, 30))
        out.append(f"{i}: " + " ".join(rng.choice(words, size=length)))
    return out


def synthetic_loglik(k: int, n: int, seed: int = 0, spread: float = 0.3) -> np.ndarray:
    """A K x N float32 matrix that looks like log-likelihoods: a shared per-text difficulty
    (about -300 nats), per-model offsets, and per-model deviations of relative size ``spread``."""
    rng = np.random.default_rng(seed)
    difficulty = -300.0 + 60.0 * rng.standard_normal(n)
    offsets = 20.0 * rng.standard_normal((k, 1))
    deviations = spread * 30.0 * rng.standard_normal((k, n))
    return (difficulty[None, :] + offsets + deviations).astype(np.float32)


def default_rows(k: int, model_prefix: str = "org/model") -> list[dict]:
    """One output-layer entry per model: ``org/model-000@main`` ..."""
    rows = []
    for i in range(k):
        model = f"{model_prefix}-{i:03d}"
        rows.append(
            {
                "entry_id": entry_id(model, "main"),
                "model_id": model,
                "revision": "main",
                "model_type": ["llama", "gpt2", "pythia"][i % 3],
                "n_params": 1_000_000 * (i + 1),
            }
        )
    return rows


def write_dataset(
    root: Path,
    loglik: np.ndarray,
    rows: Sequence[dict] | None = None,
    *,
    texts: Sequence[str] | None = None,
    text_set: str = TEXT_SET,
    files: int = 1,
    clip_threshold: float | None = None,
    mean_text_bytes: float | None = None,
    dataset_version: str = "1.0.0",
    kind: str = "test",
) -> Path:
    """Write ``loglik`` (K x N) as a dataset folder at ``root`` and return ``root``.

    ``rows`` gives each entry's metadata (entry_id, model_id, revision, layer, ...); missing
    required fields are filled in. The text-set fields of a row are kept when given, so a test
    can write a vector on another text set.
    """
    root = Path(root)
    loglik = np.asarray(loglik, dtype=np.float32)
    k, n = loglik.shape
    texts = list(texts) if texts is not None else make_texts(n)
    sha = write_texts(root / "texts" / f"{text_set}.parquet", texts, ["synthetic"] * n)
    rows = [dict(r) for r in (rows if rows is not None else default_rows(k))]
    if len(rows) != k:
        raise ValueError(f"{len(rows)} rows for {k} vectors")
    for row, vector in zip(rows, loglik, strict=True):
        row.setdefault("text_set", text_set)
        row.setdefault("text_set_sha256", sha)
        row.setdefault("bos_policy", "bos")
        row.setdefault("revision", "main")
        row.setdefault("model_id", row["entry_id"].split("@")[0])
        row["loglik"] = vector
    if mean_text_bytes is None:
        mean_text_bytes = float(np.mean([len(t.encode("utf-8")) for t in texts]))
    write_metadata(
        root,
        DatasetMetadata(
            dataset_version=dataset_version,
            text_set=text_set,
            text_set_sha256=sha,
            n_texts=n,
            mean_text_bytes=mean_text_bytes,
            clip_threshold=clip_threshold,
        ),
    )
    for i, part in enumerate(np.array_split(np.arange(k), files)):
        write_vectors(root / "vectors" / kind / f"part-{i:03d}.parquet", [rows[j] for j in part], n)
    return root
