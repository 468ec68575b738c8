"""Merging build outputs (shards) into a dataset folder, atomically.

The result is written beside the target and swapped in by rename, so a failed merge leaves
the target as it was. Duplicate entry ids and mismatched text sets are refused.

Memory does not grow with the vectors: every pass reads them a block of rows at a time
(:mod:`llkl_db.indexing`), and the compacted files are written by an external bucket sort
(:mod:`llkl_db.io.ordered`). What is held: the entries' metadata and index coordinates (K rows),
the sample the basis is fitted on (up to 20,000 x N float64, only when a basis is fitted), a
block of 2,048 rows (float32 and two float64 copies) and a sort bucket of 32 MB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import polars as pl

from llkl_db import math as llmath
from llkl_db.card import render_card
from llkl_db.errors import LlklError
from llkl_db.indexing import build_index, clip_thresholds, plan_for_merge
from llkl_db.io.folder import ROWS_PER_GROUP, DatasetFolder, replacing
from llkl_db.io.metadata import DatasetMetadata, check_dataset_version
from llkl_db.io.ordered import bucket_rows, write_in_order
from llkl_db.io.tables import merge_tables
from llkl_db.io.vectors import FILE_COLUMN, scan_entries, vector_file_limits
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
    kinds = {}  # vector file -> the kind of its entries (its folder under vectors/)
    for folder in sources:
        for f in folder.vector_files():
            parts = f.relative_to(folder.vectors_dir).parts
            kinds[str(f)] = parts[0] if len(parts) > 1 else "models"
    entries = scan_entries([Path(f) for f in kinds], len(text_set), text_set.key)

    recorded = {0: existing.clip_threshold, 1: existing.layer_clip_threshold} if existing and not recompute_clip else {}
    thresholds = clip_thresholds(entries, len(text_set), recorded, llmath.DEFAULT_CLIP_PERCENTILE)
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
    basis, rank, _ = plan_for_merge(entries, len(text_set), thresholds, target if existing else None)
    with replacing(target.root, overwrite=overwrite) as staging:
        staging.add_text_set(text_set)
        _write_compacted(entries, kinds, staging, rank)
        merge_tables(sources, staging)  # optional tables (weight distances, scores) come along
        staging.write_metadata(metadata)
        build_index(staging, basis=basis)
        staging.write_card(render_card(staging, metadata, staging.entries()))
    return metadata


def _write_compacted(entries: pl.DataFrame, kinds: dict[str, str], staging: DatasetFolder, rank) -> None:
    """One Parquet file per kind of entry (vectors/<kind>/data.parquet, or data-NNN.parquet beyond
    the rows a vector file may hold), rows in the index's kd order (``rank``: entry_id -> _rank),
    so near entries share row groups: a dataset opens in a few file reads however many shards and
    per-entry files made it, and a query's candidates come in few row groups. Streaming:
    :func:`llkl_db.io.ordered.write_in_order`."""
    schema = arrow_schema("vectors", staging.n_texts)
    ranked = entries.select("entry_id", FILE_COLUMN).join(rank, on="entry_id", how="left", maintain_order="left")
    by_kind: dict[str, list[tuple[Path, np.ndarray]]] = {}
    for path, ranks in ranked.group_by(FILE_COLUMN, maintain_order=True).agg(pl.col("_rank")).iter_rows():
        by_kind.setdefault(kinds[path], []).append((Path(path), np.asarray(ranks, dtype=np.int64)))
    rows = bucket_rows(staging.n_texts, ROWS_PER_GROUP)
    limit = max(ROWS_PER_GROUP, vector_file_limits(staging.n_texts)[0] // ROWS_PER_GROUP * ROWS_PER_GROUP)
    for kind, sources in by_kind.items():
        ranks = np.concatenate([r for _, r in sources])
        position = np.empty(ranks.size, dtype=np.int64)
        position[np.argsort(ranks, kind="stable")] = np.arange(ranks.size)
        cuts = np.cumsum([r.size for _, r in sources])[:-1]
        staging.vector_path(kind, "data").parent.mkdir(parents=True)
        with _parts(staging, kind, ranks.size, limit) as write:
            scratch = staging.root / f".sort-{kind}"
            write_in_order([p for p, _ in sources], np.split(position, cuts), write, schema, scratch, rows)


@contextmanager
def _parts(staging: DatasetFolder, kind: str, total: int, limit: int) -> Iterator[Callable]:
    """``write(table)`` of consecutive rows into vectors/<kind>/data.parquet, or, beyond the
    rows a vector file may hold (``limit``, whole row groups), into data-000.parquet,
    data-001.parquet, ... of ``limit`` rows each."""
    names = ["data"] if total <= limit else [f"data-{i:03d}" for i in range(-(-total // limit))]
    with ExitStack() as stack:
        state = {"write": None, "left": 0, "part": 0, "stack": None}

        def write(table) -> None:
            while table.num_rows:
                if state["write"] is None:
                    state["stack"] = stack.enter_context(ExitStack())
                    path = staging.vector_path(kind, names[state["part"]])
                    state["write"] = state["stack"].enter_context(staging.vector_writer(path))
                    state["left"], state["part"] = limit, state["part"] + 1
                take = min(state["left"], table.num_rows)
                state["write"](table.slice(0, take))
                table, state["left"] = table.slice(take), state["left"] - take
                if state["left"] == 0:
                    state["stack"].close()  # the part is complete: renamed into place
                    state["write"] = None

        yield write
