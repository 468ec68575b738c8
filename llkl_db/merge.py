"""Merging build outputs (shards) into a dataset folder, atomically.

The result is written beside the target and swapped in by rename, so a failed merge leaves
the target as it was. Duplicate entry ids and mismatched text sets are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from llkl_db import math as llmath
from llkl_db.card import render_card
from llkl_db.errors import LlklError
from llkl_db.indexing import build_index, plan_for_merge
from llkl_db.io.folder import ROWS_PER_GROUP, DatasetFolder, replacing, vector_write_options
from llkl_db.io.metadata import DatasetMetadata, check_dataset_version
from llkl_db.io.parquet import guarded
from llkl_db.io.tables import merge_tables
from llkl_db.io.vectors import check_vector_footer, read_loglik, scan_entries
from llkl_db.schema import arrow_schema


def merge(
    inputs: list[Path],
    out: Path,
    dataset_version: str | None = None,
    recompute_clip: bool = False,
    overwrite: bool = False,
) -> DatasetMetadata:
    """Combine the vectors of ``inputs`` (build outputs or datasets) into the dataset ``out``.

    An existing dataset ``out`` keeps its entries and its clip threshold (distances stay
    comparable within a version line) unless ``recompute_clip``. A non-empty ``out`` that is not
    a llkl-db folder is refused unless ``overwrite``, which replaces it.
    """
    if not inputs:
        raise LlklError("merge: no input folders")
    if dataset_version is not None:
        check_dataset_version(dataset_version, "dataset_version")
    target = DatasetFolder(Path(out))
    target.check_writable(overwrite)
    existing = target.metadata if target.is_dataset() and not overwrite else None
    sources = ([target] if existing else []) + [DatasetFolder(p) for p in inputs]
    for folder in sources:
        if not folder.root.is_dir():
            raise LlklError(f"{folder.root}: no such folder")
    text_set = sources[0].text_set
    for folder in sources[1:]:
        if folder.text_set.key != text_set.key:
            raise LlklError(
                f"{folder.root}: text set {folder.text_set.key.short()} differs from "
                f"{text_set.key.short()} of {sources[0].root}"
            )
    files = [f for folder in sources for f in folder.vector_files()]
    entries = scan_entries(files, len(text_set), text_set.key)

    thresholds = _clip_thresholds(entries, len(text_set), existing if not recompute_clip else None)
    metadata = DatasetMetadata(
        dataset_version=dataset_version or (existing.dataset_version if existing else "0.1.0"),
        text_set=text_set.name,
        text_set_sha256=text_set.sha256,
        n_texts=len(text_set),
        mean_text_bytes=text_set.mean_bytes,
        clip_threshold=thresholds.get(0),
        clip_percentile=llmath.DEFAULT_CLIP_PERCENTILE,
        layer_clip_threshold=thresholds.get(1),
    )
    basis, rank = _index_plan(entries, len(text_set), thresholds, target if existing else None)
    with replacing(target.root, overwrite=overwrite) as staging:
        staging.add_text_set(text_set)
        _write_compacted(sources, staging, rank)
        merge_tables(sources, staging)  # optional tables (weight distances, scores) come along
        staging.write_metadata(metadata)
        build_index(staging, basis=basis)
        staging.write_card(render_card(staging, metadata, staging.entries()))
    return metadata


def _index_plan(entries, n_texts: int, thresholds: dict[int, float], existing: DatasetFolder | None):
    """The index basis (kept or refitted, see :func:`llkl_db.indexing.plan_for_merge`) and the
    kd order of the entries, from the clipped matrix."""
    from llkl_db.memory import require_memory

    require_memory(entries.height * n_texts * 4, f"merging {entries.height} entries x {n_texts} texts")
    clipped = read_loglik(entries, n_texts)
    groups = entries["layer"].is_not_null().to_numpy()
    for g, value in thresholds.items():
        rows = groups == bool(g)
        clipped[rows] = np.maximum(clipped[rows], np.float32(value))
    basis, rank, _ = plan_for_merge(entries, clipped, thresholds, existing)
    return basis, rank


def _write_compacted(sources: list[DatasetFolder], staging: DatasetFolder, rank) -> None:
    """One Parquet file per kind of entry (vectors/<kind>/data.parquet), rows in the index's kd
    order (``rank``: entry_id -> _rank), so near entries share row groups: a dataset opens in a
    few file reads however many shards and per-entry files made it, and a query's candidates
    come in few row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema("vectors", staging.n_texts)
    by_kind: dict[str, list] = {}
    for folder in sources:
        for f in folder.vector_files():
            parts = f.relative_to(folder.vectors_dir).parts
            kind = parts[0] if len(parts) > 1 else "models"
            check_vector_footer(f, staging.n_texts)
            with guarded(f):
                table = pq.read_table(f)
            columns = [
                table[name] if name in table.column_names else pa.nulls(table.num_rows, schema.field(name).type)
                for name in schema.names
            ]
            by_kind.setdefault(kind, []).append(pa.table(columns, names=schema.names).cast(schema))
    for kind, tables in by_kind.items():
        table = pa.concat_tables(tables)
        ranks = pl.DataFrame({"entry_id": table["entry_id"].to_pylist()}).join(
            rank, on="entry_id", how="left", maintain_order="left"
        )["_rank"]
        table = table.take(np.argsort(ranks.to_numpy(), kind="stable")).replace_schema_metadata(schema.metadata)
        path = staging.vector_path(kind, "data")
        path.parent.mkdir(parents=True)
        pq.write_table(table, path, row_group_size=ROWS_PER_GROUP, **vector_write_options(schema))


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
