"""Partial shards: one entry's log-likelihoods on some of a text set's texts.

A partial shard is a vector file of schema v1 whose ``text_ids`` column lists the texts scored
(positions in the text set), with ``loglik`` and ``n_tokens`` holding one value per listed text.
``place --save DIR`` writes one at ``DIR/partial/<entry>.parquet`` after every chunk of texts
(atomically), so an interrupted run resumes from it; ``build --out DIR`` completes it; ``place
--vector`` reads it (or a full vector file of the dataset's text set).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llkl_db.errors import LlklError
from llkl_db.io.atomic import atomic_path
from llkl_db.io.folder import DatasetFolder
from llkl_db.io.parquet import check_footer, check_regular, guarded, read_footer
from llkl_db.io.texts import TextSetKey
from llkl_db.io.vectors import FILE_SLACK_BYTES, MAX_LOGLIK, ROW_METADATA_BYTES
from llkl_db.schema import PARQUET_VERSION_KEY, SCHEMA_VERSION, arrow_schema


@dataclass(frozen=True)
class PartialVector:
    """One entry's values on the texts ``text_ids`` (sorted, unique), and its metadata."""

    meta: dict
    text_ids: np.ndarray
    loglik: np.ndarray
    n_tokens: np.ndarray | None = None

    @property
    def n_scored(self) -> int:
        return int(self.text_ids.size)


def partial_path(save_dir: str | os.PathLike, entry_id: str) -> Path:
    """Where ``place --save DIR`` keeps the partial shard of ``entry_id``."""
    return DatasetFolder(Path(save_dir)).partial_path(entry_id)


def write_partial(path: str | os.PathLike, vector: PartialVector) -> None:
    """Write a partial shard atomically (sorted by text id)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    order = np.argsort(vector.text_ids, kind="stable")
    ids = np.asarray(vector.text_ids)[order]
    k = int(ids.size)
    schema = arrow_schema("vectors", k)
    row = {name: vector.meta.get(name) for name in schema.names}
    row["loglik"] = np.asarray(vector.loglik, dtype=np.float32)[order].tolist()
    row["n_tokens"] = None if vector.n_tokens is None else np.asarray(vector.n_tokens, np.int32)[order].tolist()
    row["text_ids"] = ids.astype(np.int32).tolist()
    table = pa.table({name: [row[name]] for name in schema.names}, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def find_vector_file(path: str | os.PathLike) -> Path:
    """A vector file, or the one partial shard (else the one vector file) inside a folder."""
    path = Path(path)
    if not path.exists():
        raise LlklError(f"{path}: no such file or folder")
    if path.is_file():
        return path
    folder = DatasetFolder(path)
    found = sorted(folder.partial_dir.glob("*.parquet")) if folder.partial_dir.is_dir() else []
    if not found:
        found = folder.vector_files()
    if len(found) != 1:
        what = "no vector file" if not found else f"{len(found)} vector files"
        raise LlklError(f"{path}: {what} found; give the file itself")
    return found[0]


def read_vector(path: str | os.PathLike, text_set: TextSetKey, n_texts: int) -> PartialVector:
    """Read a vector file (one entry, all N texts) or a partial shard of the text set
    ``text_set``, refusing another text set, NaN or infinite values, positive log-likelihoods and
    text ids out of range or repeated."""
    import polars as pl

    path = find_vector_file(path)
    check_regular(path)
    footer = read_footer(path, "vector file")
    version = footer.metadata.get(PARQUET_VERSION_KEY.decode())
    if version != str(SCHEMA_VERSION):
        raise LlklError(f"{path}: schema version {version or 'missing'}, this llkl-db reads version {SCHEMA_VERSION}")
    # loglik (float32), n_tokens and text_ids (int32) of at most N texts, with encoding headroom
    check_footer(
        path, footer, max_bytes=int(n_texts * 12 * 1.5) + ROW_METADATA_BYTES + FILE_SLACK_BYTES, what="vector file"
    )
    if footer.num_rows != 1:
        raise LlklError(f"{path}: holds {footer.num_rows} entries; place reads one vector")
    with guarded(path):
        df = pl.read_parquet(path)
    missing = [c for c in ("entry_id", "text_set", "text_set_sha256", "loglik") if c not in df.columns]
    if missing:
        raise LlklError(f"{path}: missing column(s) {', '.join(missing)}")
    meta = df.drop([c for c in ("loglik", "n_tokens", "text_ids") if c in df.columns]).row(0, named=True)
    if meta["text_set_sha256"] != text_set.sha256:
        raise LlklError(
            f"{path}: scored on text set {meta['text_set']} (sha256 {str(meta['text_set_sha256'])[:12]}), "
            f"the dataset's is {text_set.name} (sha256 {text_set.sha256[:12]}); score the model on the dataset's texts"
        )
    loglik = np.asarray(df["loglik"][0], dtype=np.float64)
    raw_ids = df["text_ids"][0] if "text_ids" in df.columns else None
    ids = np.arange(n_texts) if raw_ids is None else np.asarray(raw_ids, dtype=np.int64)
    if ids.size != loglik.size:
        raise LlklError(f"{path}: {loglik.size} log-likelihoods for {ids.size} texts")
    if ids.size and (ids.min() < 0 or ids.max() >= n_texts):
        raise LlklError(f"{path}: text ids must lie in 0..{n_texts - 1} (the dataset's text set)")
    if np.unique(ids).size != ids.size:
        raise LlklError(f"{path}: repeated text ids")
    bad = ~np.isfinite(loglik)
    if bad.any():
        raise LlklError(f"{path}: {int(bad.sum())} non-finite log-likelihood value(s) (NaN or inf)")
    if (loglik > MAX_LOGLIK).any():
        raise LlklError(f"{path}: positive log-likelihood(s); a log-likelihood is at most 0")
    n_tokens = None
    if "n_tokens" in df.columns and df["n_tokens"][0] is not None:
        n_tokens = np.asarray(df["n_tokens"][0], dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    return PartialVector(meta, ids[order], loglik[order], None if n_tokens is None else n_tokens[order])
