"""Merging build outputs (shards) into a dataset folder, atomically.

The result is written beside the target and swapped in by rename, so a failed merge leaves
the target as it was. Duplicate entry ids and mismatched text sets are refused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from llkl_db import math as llmath
from llkl_db.card import render_card
from llkl_db.errors import LlklError
from llkl_db.io.atomic import umask, write_text_atomic
from llkl_db.io.metadata import DatasetMetadata, check_dataset_version, read_metadata, write_metadata
from llkl_db.io.tables import merge_tables
from llkl_db.io.texts import read_texts, text_set_sha256
from llkl_db.io.vectors import VECTOR_DIR, TextSetKey, read_loglik, scan_entries, vector_files
from llkl_db.schema import METADATA_FILE, arrow_schema


def _text_set_of(folder: Path) -> Path:
    files = sorted((folder / "texts").glob("*.parquet"))
    if len(files) != 1:
        raise LlklError(f"{folder}: expected one text set in texts/, found {len(files)}")
    return files[0]


def merge(
    inputs: list[Path], out: Path, dataset_version: str | None = None, recompute_clip: bool = False
) -> DatasetMetadata:
    """Combine the vectors of ``inputs`` (build outputs or datasets) into the dataset ``out``.

    An existing ``out`` keeps its entries and its clip threshold (distances stay comparable
    within a version line) unless ``recompute_clip``.
    """
    if not inputs:
        raise LlklError("merge: no input folders")
    if dataset_version is not None:
        check_dataset_version(dataset_version, "--version")
    existing = read_metadata(out) if (out / METADATA_FILE).is_file() else None
    sources = ([out] if existing else []) + [Path(p) for p in inputs]
    for folder in sources:
        if not folder.is_dir():
            raise LlklError(f"{folder}: no such folder")
    texts_file = _text_set_of(sources[0])
    texts = read_texts(texts_file)["text"].to_list()
    key = TextSetKey(texts_file.stem, text_set_sha256(texts))
    for folder in sources[1:]:
        other = _text_set_of(folder)
        if other.stem != key.name or text_set_sha256(read_texts(other)["text"].to_list()) != key.sha256:
            raise LlklError(f"{folder}: text set {other.stem} differs from {key.name} of {sources[0]}")
    files = [f for folder in sources for f in vector_files(folder)]
    entries = scan_entries(files, len(texts), key)

    thresholds = _clip_thresholds(entries, len(texts), existing if not recompute_clip else None)
    metadata = DatasetMetadata(
        dataset_version=dataset_version or (existing.dataset_version if existing else "0.1.0"),
        text_set=key.name,
        text_set_sha256=key.sha256,
        n_texts=len(texts),
        mean_text_bytes=sum(len(t.encode("utf-8")) for t in texts) / len(texts),
        clip_threshold=thresholds.get(0),
        clip_percentile=llmath.DEFAULT_CLIP_PERCENTILE,
        layer_clip_threshold=thresholds.get(1),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.merge-", dir=out.parent))
    staging.chmod(0o777 & ~umask())  # mkdtemp makes it private; a dataset is an ordinary folder
    try:
        (staging / "texts").mkdir()
        shutil.copyfile(texts_file, staging / "texts" / texts_file.name)
        _write_compacted(sources, staging, len(texts))
        merge_tables(sources, staging)  # optional tables (weight distances, scores) come along
        write_metadata(staging, metadata)
        staged_entries = scan_entries(vector_files(staging), len(texts), key)
        write_text_atomic(staging / "README.md", render_card(staging, metadata, staged_entries))
        _swap_in(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return metadata


def _write_compacted(sources: list[Path], staging: Path, n_texts: int) -> None:
    """One Parquet file per kind of entry (vectors/<kind>/data.parquet), rows sorted by entry id:
    a dataset opens in a few file reads however many shards and per-entry files made it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema("vectors", n_texts)
    by_kind: dict[str, list] = {}
    for folder in sources:
        for f in vector_files(folder):
            parts = f.relative_to(folder / VECTOR_DIR).parts
            kind = parts[0] if len(parts) > 1 else "models"
            table = pq.read_table(f)
            columns = [
                table[name] if name in table.column_names else pa.nulls(table.num_rows, schema.field(name).type)
                for name in schema.names
            ]
            by_kind.setdefault(kind, []).append(pa.table(columns, names=schema.names).cast(schema))
    for kind, tables in by_kind.items():
        table = pa.concat_tables(tables).sort_by("entry_id").replace_schema_metadata(schema.metadata)
        (staging / VECTOR_DIR / kind).mkdir(parents=True)
        pq.write_table(table, staging / VECTOR_DIR / kind / "data.parquet", compression="zstd")


def _clip_thresholds(entries, n_texts: int, existing: DatasetMetadata | None) -> dict[int, float]:
    """The clip thresholds of model outputs (0) and logit-lens layers (1): the recorded ones of
    an existing version (distances stay comparable), else the percentile of each group's values."""
    recorded = {0: existing.clip_threshold, 1: existing.layer_clip_threshold} if existing else {}
    groups = entries["layer"].is_not_null().to_numpy().astype(np.int8)
    if all(recorded.get(int(g)) is not None for g in np.unique(groups)):
        return {g: v for g, v in recorded.items() if v is not None}
    loglik = read_loglik(entries, n_texts)
    per_row = llmath.group_thresholds(loglik, groups, recorded, llmath.DEFAULT_CLIP_PERCENTILE)
    return {int(g): float(per_row[groups == g][0]) for g in np.unique(groups)}


def _swap_in(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old)
