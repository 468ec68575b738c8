"""Building a dataset's search index (``index/``, see :mod:`llkl_db.io.index`), in blocks.

The basis is fitted on a sample of whole row groups (up to ``sample`` entries, float64
randomized SVD); every entry is then projected in blocks of row groups, so memory holds the
sample and one block, never the K x N matrix. Clip thresholds must be recorded in llkl-db.json
(``merge`` records them) unless the matrix fits the memory budget.
"""

from __future__ import annotations

import datetime as _dt
import json

import numpy as np

from llkl_db import math as llmath
from llkl_db import relations
from llkl_db.errors import LlklError
from llkl_db.io.atomic import write_text_atomic
from llkl_db.io.folder import DatasetFolder
from llkl_db.io.index import INDEX_FORMAT_VERSION, IndexInfo, entry_ids_digest, write_index
from llkl_db.io.rowgroups import RowGroupReader, local_opener
from llkl_db.io.vectors import FILE_COLUMN
from llkl_db.math import index as mindex
from llkl_db.memory import require_memory

BLOCK_ROWS = 2048
GROUP_NAMES = {0: "outputs", 1: "layers"}


def thresholds_of(folder: DatasetFolder, entries) -> dict[int, float]:
    """The clip threshold per group (0 outputs, 1 layers) present in ``entries``: the recorded
    ones, else computed from the whole matrix (which must fit in memory)."""
    meta = folder.metadata
    recorded = {0: meta.clip_threshold, 1: meta.layer_clip_threshold}
    groups = entries["layer"].is_not_null().to_numpy().astype(np.int8)
    present = [int(g) for g in np.unique(groups)]
    if all(recorded.get(g) is not None for g in present):
        return {g: float(recorded[g]) for g in present}
    require_memory(entries.height * folder.n_texts * 4, "computing clip thresholds (none recorded in llkl-db.json)")
    loglik = folder.read_loglik(entries)
    per_row = llmath.group_thresholds(loglik, groups, recorded, meta.clip_percentile)
    return {g: float(per_row[groups == g][0]) for g in present}


def _layout(folder: DatasetFolder, entries):
    """Entries in storage order with ``file`` (relative) and ``row`` columns."""
    import polars as pl

    root = str(folder.root) + "/"
    return entries.with_columns(
        pl.col(FILE_COLUMN).str.strip_prefix(root).alias("file"),
        pl.int_range(pl.len()).over(FILE_COLUMN).cast(pl.Int64).alias("row"),
    )


def _blocks(reader: RowGroupReader, layout, thresholds_row: np.ndarray, positions: np.ndarray | None = None):
    """Yield (positions, clipped float32 rows) over ``layout`` (all rows, or the row groups of
    ``positions``), a block of about BLOCK_ROWS rows at a time."""
    files = layout["file"].to_numpy()
    rows = layout["row"].to_numpy()
    wanted = np.arange(layout.height) if positions is None else np.sort(positions)
    seen = np.zeros(layout.height, dtype=bool)
    for rel in dict.fromkeys(files[wanted]):
        in_file = wanted[files[wanted] == rel]
        base = int(np.flatnonzero(files == rel)[0])  # storage order: a file's rows are contiguous
        for start in range(0, in_file.size, BLOCK_ROWS):
            got, ids, values = reader.read(rel, rows[in_file[start : start + BLOCK_ROWS]])
            pos = base + got
            fresh = ~seen[pos]
            if not fresh.any():
                continue
            pos, values, ids = pos[fresh], values[fresh], [i for i, f in zip(ids, fresh, strict=True) if f]
            seen[pos] = True
            if ids != layout["entry_id"][pos].to_list():
                raise LlklError(f"{folder_hint(layout, pos)}: rows changed while indexing")
            np.maximum(values, thresholds_row[pos, None].astype(np.float32), out=values)
            yield pos, values


def folder_hint(layout, pos) -> str:
    return str(layout["file"][int(pos[0])])


def build_index(
    folder: DatasetFolder,
    d: int = mindex.DEFAULT_DIM,
    sample: int = mindex.DEFAULT_SAMPLE,
    seed: int = 0,
    basis: tuple[np.ndarray, np.ndarray] | None = None,
) -> IndexInfo:
    """Build and write the index of the dataset ``folder``; with ``basis`` (mu, B) keep it
    instead of fitting one. Returns what index.json records."""
    meta = folder.metadata
    entries = folder.entries()
    layout = _layout(folder, entries)
    n = meta.n_texts
    thresholds = thresholds_of(folder, entries)
    groups = entries["layer"].is_not_null().to_numpy().astype(np.int8)
    row_thr = np.array([thresholds[int(g)] for g in groups], dtype=np.float64)
    reader = reader_for(folder, n)
    if basis is None:
        require_memory(min(sample, entries.height) * n * 8 * 3, "fitting the index basis (sample of entries)")
        picks = _sample_positions(reader, layout, sample, seed)
        chunks = [v for _, v in _blocks(reader, layout, row_thr, picks)]
        mu, b, _ = mindex.fit_basis(np.concatenate(chunks), d=d, seed=seed)
        del chunks
        mu = mu.astype(np.float32)
    else:
        mu, b = basis
    coords = np.empty((entries.height, b.shape[0]), dtype=np.float32)
    residuals = np.empty(entries.height, dtype=np.float64)
    totals = np.empty(entries.height, dtype=np.float64)
    for pos, values in _blocks(reader, layout, row_thr):
        coords[pos], residuals[pos], totals[pos] = mindex.project(values, mu, b)
    reader.close()
    vector_files = {
        rel: [int(count), (folder.root / rel).stat().st_size]
        for rel, count in layout.group_by("file", maintain_order=True).len().iter_rows()
    }
    info = IndexInfo(
        index_format_version=INDEX_FORMAT_VERSION,
        dataset_version=meta.dataset_version,
        text_set_sha256=meta.text_set_sha256,
        n_texts=n,
        n_entries=entries.height,
        d=int(b.shape[0]),
        clip_thresholds={GROUP_NAMES[g]: v for g, v in thresholds.items()},
        explained_variance_fraction=1.0 - mindex.residual_fraction(residuals, totals),
        entry_ids_sha256=entry_ids_digest(entries["entry_id"].to_list()),
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        vector_files=vector_files,
    )
    calibration = _calibration(reader_for(folder, n), layout, row_thr, meta.mean_text_bytes)

    write_text_atomic(
        folder.index_path("calibration.json"), json.dumps(relations.calibration_to_json(calibration)) + "\n"
    )
    return write_index(folder, info, layout, coords, residuals, mu, b)


CALIBRATION_PAIRS_PER_CLASS = 500  # at most ~6,000 rows read to calibrate relations


def reader_for(folder: DatasetFolder, n_texts: int) -> RowGroupReader:
    return RowGroupReader(local_opener(str(folder.root)), n_texts, where=f"{folder.root}/")


def _calibration(reader: RowGroupReader, layout, row_thr: np.ndarray, mean_bytes: float):
    """The relation calibration of the dataset (llkl_db.relations), published with the index so
    that a query through the index labels relations without reading the labelled pairs' rows."""

    def rows(positions: list[int]) -> np.ndarray:
        wanted = np.asarray(positions, dtype=np.int64)
        found = {}
        for pos, values in _blocks(reader, layout, row_thr, wanted):
            for p, v in zip(pos, values, strict=True):
                found[int(p)] = v
        return np.stack([found[int(p)] for p in wanted])

    try:
        return relations.calibrate_from_rows(layout, rows, mean_bytes, limit=CALIBRATION_PAIRS_PER_CLASS)
    finally:
        reader.close()


def _sample_positions(reader: RowGroupReader, layout, sample: int, seed: int) -> np.ndarray:
    """Positions of whole row groups chosen at random until about ``sample`` rows."""
    if layout.height <= sample:
        return np.arange(layout.height)
    units = []  # (first position, count) per row group
    base = 0
    for rel, count in layout.group_by("file", maintain_order=True).len().iter_rows():
        starts = reader._file(rel)[1]
        for a, z in zip(starts[:-1], starts[1:], strict=True):
            units.append((base + int(a), int(z - a)))
        base += int(count)
    rng = np.random.default_rng(seed)
    picked, total = [], 0
    for i in rng.permutation(len(units)):
        if total >= sample:
            break
        a, c = units[i]
        picked.append(np.arange(a, a + c))
        total += c
    return np.sort(np.concatenate(picked))


def keep_basis_decision(old_fraction: float, new_fraction: float) -> bool:
    """Keep the published basis for new entries when their residual energy fraction stays
    within 1.5x the dataset's, or 0.05 above it (whichever is looser); else refit."""
    return new_fraction <= max(1.5 * old_fraction, old_fraction + 0.05)


def project_blocks(clipped: np.ndarray, mu: np.ndarray, basis: np.ndarray, block: int = 4096):
    """:func:`llkl_db.math.index.project` over a matrix in blocks of rows (bounded float64 copies)."""
    k = clipped.shape[0]
    coords = np.empty((k, basis.shape[0]), dtype=np.float32)
    residuals = np.empty(k)
    totals = np.empty(k)
    for start in range(0, k, block):
        part = slice(start, start + block)
        coords[part], residuals[part], totals[part] = mindex.project(clipped[part], mu, basis)
    return coords, residuals, totals


def plan_for_merge(
    entries, clipped: np.ndarray, thresholds: dict[int, float], existing: DatasetFolder | None, seed: int = 0
):
    """The basis of a merged dataset and the storage rank of each entry (kd order).

    The existing dataset's basis is kept when its index reads, was made with the same clip
    thresholds, and the new entries' residual energy fraction passes :func:`keep_basis_decision`;
    otherwise a basis is fitted on a sample of the merged entries. Returns ((mu, B), rank by id,
    whether the basis was kept)."""
    import polars as pl

    basis = None
    if existing is not None and existing.has_index():
        try:
            old = existing.read_index(check_files=False)
        except LlklError:
            old = None
        named = {GROUP_NAMES[g]: v for g, v in thresholds.items()}
        if old is not None and old.info.clip_thresholds == named and old.info.n_texts == clipped.shape[1]:
            new = ~entries["entry_id"].is_in(old.entries["entry_id"].implode()).to_numpy()
            fraction = 0.0
            if new.any():
                _, r, t = project_blocks(clipped[new], old.mu, old.basis)
                fraction = mindex.residual_fraction(r, t)
            if keep_basis_decision(1.0 - old.info.explained_variance_fraction, fraction):
                basis = (old.mu, old.basis)
    kept = basis is not None
    if basis is None:
        k = clipped.shape[0]
        rng = np.random.default_rng(seed)
        rows = (
            np.sort(rng.choice(k, mindex.DEFAULT_SAMPLE, replace=False)) if k > mindex.DEFAULT_SAMPLE else np.arange(k)
        )
        mu, b, _ = mindex.fit_basis(clipped[rows], seed=seed)
        basis = (mu.astype(np.float32), b)
    coords, _, _ = project_blocks(clipped, *basis)
    order = mindex.kd_order(coords)
    rank = pl.DataFrame({"entry_id": entries["entry_id"][order], "_rank": np.arange(order.size)})
    return basis, rank, kept


def reorder_by_index(folder: DatasetFolder, cache_groups: int = 96) -> IndexInfo:
    """Rewrite each vector file of ``folder`` in the kd order of its entries' index coordinates
    (near entries share row groups, as merge writes them), streaming: memory holds an LRU cache
    of decoded row groups and one output block, never a whole file. Each file is replaced
    atomically; the index is rewritten for the new rows (same basis and coordinates)."""
    from collections import OrderedDict

    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = folder.read_index()
    info = index.info
    new_entries, new_coords, new_res = [], [], []
    for fi, rel in enumerate(index.files):
        positions = np.flatnonzero(index.file_of == fi)
        positions = positions[np.argsort(index.row_of[positions])]
        order = positions[mindex.kd_order(index.coords[positions])]
        path = folder.root / rel
        pf = pq.ParquetFile(path)
        sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        cache: OrderedDict[int, pa.Table] = OrderedDict()

        def group(g: int, pf=pf, cache=cache) -> pa.Table:
            if g in cache:
                cache.move_to_end(g)
                return cache[g]
            table = pf.read_row_group(g)
            cache[g] = table
            if len(cache) > cache_groups:
                cache.popitem(last=False)
            return table

        with folder.vector_writer(path) as write:
            for start in range(0, order.size, BLOCK_ROWS):
                rows = index.row_of[order[start : start + BLOCK_ROWS]]
                gs = np.searchsorted(starts, rows, side="right") - 1
                parts = [group(int(g)).slice(int(r - starts[g]), 1) for r, g in zip(rows, gs, strict=True)]
                block = pa.concat_tables(parts).combine_chunks()
                expected = index.entries["entry_id"][order[start : start + BLOCK_ROWS]].to_list()
                if block["entry_id"].to_pylist() != expected:
                    raise LlklError(f"{path}: rows changed while reordering")
                write(block)
        pf.close()
        new_entries.append(
            index.entries[order].with_columns(pl.lit(rel).alias("file"), pl.Series("row", np.arange(order.size)))
        )
        new_coords.append(index.coords[order])
        new_res.append(index.residuals[order])
    entries = pl.concat(new_entries)
    vector_files = {
        rel: [int(rows), (folder.root / rel).stat().st_size] for rel, (rows, _) in info.vector_files.items()
    }
    from dataclasses import replace

    info = replace(info, entry_ids_sha256=entry_ids_digest(entries["entry_id"].to_list()), vector_files=vector_files)
    write_index(folder, info, entries, np.concatenate(new_coords), np.concatenate(new_res), index.mu, index.basis)
    return info
