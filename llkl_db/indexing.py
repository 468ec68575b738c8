"""Building a dataset's search index (``index/``, see :mod:`llkl_db.io.index`), in blocks.

The basis is fitted on a sample of whole row groups (up to ``sample`` entries, float64
randomized SVD); every entry is then projected in blocks of row groups, so memory holds the
sample and one block, never the K x N matrix. A clip threshold not recorded in llkl-db.json is
computed exactly in two passes over blocks (:func:`clip_thresholds`). ``merge`` plans its basis
and storage order here too (:func:`plan_for_merge`), and ``--reorder`` rewrites the vector files
through a staging folder (:func:`reorder_by_index`).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from llkl_db import relations
from llkl_db.errors import LlklError
from llkl_db.io.atomic import write_text_atomic
from llkl_db.io.folder import DatasetFolder
from llkl_db.io.index import INDEX_FORMAT_VERSION, IndexInfo, entry_ids_digest, write_index
from llkl_db.io.rowgroups import RowGroupReader, local_opener
from llkl_db.io.vectors import FILE_COLUMN, iter_loglik
from llkl_db.math import index as mindex
from llkl_db.math.quantile import StreamingPercentile
from llkl_db.memory import require_memory

BLOCK_ROWS = 2048
REWRITTEN_INDEX_FILES = ("index.json", "entries.parquet", "basis.parquet")  # by write_index
GROUP_NAMES = {0: "outputs", 1: "layers"}


def thresholds_of(folder: DatasetFolder, entries) -> dict[int, float]:
    """The clip threshold per group (0 outputs, 1 layers) present in ``entries``: the recorded
    ones, else computed from the vectors in blocks (:func:`clip_thresholds`)."""
    meta = folder.metadata
    recorded = {0: meta.clip_threshold, 1: meta.layer_clip_threshold}
    return clip_thresholds(entries, folder.n_texts, recorded, meta.clip_percentile, keep_absent=False)


def clip_thresholds(
    entries, n_texts: int, recorded: dict[int, float | None], percentile: float, keep_absent: bool = True
) -> dict[int, float]:
    """The clip threshold of each group of ``entries`` (0 model outputs, 1 logit-lens layers):
    its ``recorded`` value, else the exact ``percentile`` of the group's values, as
    :func:`llkl_db.math.group_thresholds` computes it on the whole matrix, in two passes over
    the vectors in blocks (memory: one block). When every present group is recorded the vectors
    are not read, and with ``keep_absent`` the recorded value of an absent group is kept too."""
    groups = entries["layer"].is_not_null().to_numpy().astype(np.int8)
    present = [int(g) for g in np.unique(groups)]
    if all(recorded.get(g) is not None for g in present):
        kept = recorded if keep_absent else {g: recorded[g] for g in present}
        return {g: float(v) for g, v in kept.items() if v is not None}
    todo = {g: StreamingPercentile(percentile) for g in present if recorded.get(g) is None}
    for feed in ("add_coarse", "add_fine"):
        for start, block in iter_loglik(entries, n_texts, BLOCK_ROWS):
            part = groups[start : start + block.shape[0]]
            for g, stat in todo.items():
                getattr(stat, feed)(block[part == g])
    return {g: float(recorded[g]) if g not in todo else todo[g].value() for g in present}


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
    ``positions``), whole row groups of about BLOCK_ROWS rows in all at a time (at least one)."""
    files = layout["file"].to_numpy()
    rows = layout["row"].to_numpy()
    wanted = np.arange(layout.height) if positions is None else np.unique(positions)
    for rel in dict.fromkeys(files[wanted]):
        in_file = wanted[files[wanted] == rel]
        base = int(np.flatnonzero(files == rel)[0])  # storage order: a file's rows are contiguous
        starts = reader._file(rel)[1]
        groups, first = np.unique(np.searchsorted(starts, rows[in_file], side="right") - 1, return_index=True)
        sizes = starts[groups + 1] - starts[groups]
        begin = 0
        while begin < groups.size:
            end, total = begin + 1, sizes[begin]
            while end < groups.size and total + sizes[end] <= BLOCK_ROWS:
                total += sizes[end]
                end += 1
            stop = first[end] if end < groups.size else in_file.size
            got, ids, values = reader.read(rel, rows[in_file[first[begin] : stop]])
            pos = base + got
            if ids != layout["entry_id"][pos].to_list():
                raise LlklError(f"{folder_hint(layout, pos)}: rows changed while indexing")
            np.maximum(values, thresholds_row[pos, None].astype(np.float32), out=values)
            yield pos, values
            begin = end


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
        require_memory(min(sample, entries.height) * n * 8, "fitting the index basis (sample of entries)")
        picks = _sample_positions(reader, layout, sample, seed)
        rows = np.empty((picks.size, n), dtype=np.float64)  # the sample, centred in place by the fit
        at = 0
        for _, values in _blocks(reader, layout, row_thr, picks):
            rows[at : at + values.shape[0]] = values
            at += values.shape[0]
        mu, b, _ = mindex.fit_basis(rows[:at], d=d, seed=seed, overwrite=True)
        del rows
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
    calibration = _calibration(reader_for(folder, n), layout, row_thr, n, meta.mean_text_bytes)

    write_text_atomic(
        folder.index_path("calibration.json"), json.dumps(relations.calibration_to_json(calibration)) + "\n"
    )
    return write_index(folder, info, layout, coords, residuals, mu, b)


CALIBRATION_PAIRS_PER_CLASS = 500  # at most ~6,000 rows read to calibrate relations


def reader_for(folder: DatasetFolder, n_texts: int) -> RowGroupReader:
    return RowGroupReader(local_opener(str(folder.root)), n_texts, where=f"{folder.root}/")


def _calibration(reader: RowGroupReader, layout, row_thr: np.ndarray, n_texts: int, mean_bytes: float):
    """The relation calibration of the dataset (llkl_db.relations), published with the index so
    that a query through the index labels relations without reading the labelled pairs' rows."""

    def rows(positions: list[int]) -> np.ndarray:
        wanted = np.asarray(positions, dtype=np.int64)
        out = np.empty((wanted.size, n_texts), dtype=np.float32)
        for pos, values in _blocks(reader, layout, row_thr, wanted):
            hit = np.isin(wanted, pos)  # keep the rows asked for, not the rest of their groups
            out[hit] = values[np.searchsorted(pos, wanted[hit])]
        return out

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


def _project_all(blocks, mu: np.ndarray, basis: np.ndarray, k: int):
    """Coordinates, residual norms and total norms of the K rows that ``blocks`` yields."""
    coords = np.empty((k, basis.shape[0]), dtype=np.float32)
    residuals = np.empty(k)
    totals = np.empty(k)
    for start, block in blocks:
        part = slice(start, start + block.shape[0])
        coords[part], residuals[part], totals[part] = mindex.project(block, mu, basis)
    return coords, residuals, totals


def plan_for_merge(entries, n_texts: int, thresholds: dict[int, float], existing: DatasetFolder | None, seed: int = 0):
    """The basis of a merged dataset and the storage rank of each entry (kd order), from the
    clipped vectors of ``entries`` (scan order) read in blocks.

    The existing dataset's basis is kept when its index reads, was made with the same clip
    thresholds, and the new entries' residual energy fraction passes :func:`keep_basis_decision`;
    otherwise a basis is fitted on a sample of the merged entries. Returns ((mu, B), rank by id,
    whether the basis was kept). Memory: K x d coordinates, one block, and the sample (up to
    ``DEFAULT_SAMPLE`` x N float64) when a basis is fitted."""
    import polars as pl

    k = entries.height
    groups = entries["layer"].is_not_null().to_numpy().astype(np.int8)
    row_thr = np.array([thresholds[int(g)] for g in groups], dtype=np.float32)

    def blocks():
        for start, block in iter_loglik(entries, n_texts, BLOCK_ROWS):
            np.maximum(block, row_thr[start : start + block.shape[0], None], out=block)
            yield start, block

    basis = coords = None
    if existing is not None and existing.has_index():
        try:
            old = existing.read_index(check_files=False)
        except LlklError:
            old = None
        named = {GROUP_NAMES[g]: v for g, v in thresholds.items()}
        if old is not None and old.info.clip_thresholds == named and old.info.n_texts == n_texts:
            new = ~entries["entry_id"].is_in(old.entries["entry_id"].implode()).to_numpy()
            coords, r, t = _project_all(blocks(), old.mu, old.basis, k)
            fraction = mindex.residual_fraction(r[new], t[new]) if new.any() else 0.0
            if keep_basis_decision(1.0 - old.info.explained_variance_fraction, fraction):
                basis = (old.mu, old.basis)
    kept = basis is not None
    if basis is None:
        rng = np.random.default_rng(seed)
        rows = (
            np.sort(rng.choice(k, mindex.DEFAULT_SAMPLE, replace=False)) if k > mindex.DEFAULT_SAMPLE else np.arange(k)
        )
        require_memory(rows.size * n_texts * 8, f"fitting the index basis ({rows.size} entries x {n_texts} texts)")
        sample = np.empty((rows.size, n_texts), dtype=np.float64)
        for start, block in blocks():
            lo, hi = np.searchsorted(rows, [start, start + block.shape[0]])
            sample[lo:hi] = block[rows[lo:hi] - start]
        mu, b, _ = mindex.fit_basis(sample, seed=seed, overwrite=True)
        del sample
        basis = (mu.astype(np.float32), b)
        coords, _, _ = _project_all(blocks(), *basis, k)
    order = mindex.kd_order(coords)
    rank = pl.DataFrame({"entry_id": entries["entry_id"][order], "_rank": np.arange(order.size)})
    return basis, rank, kept


def reorder_by_index(folder: DatasetFolder) -> IndexInfo:
    """Rewrite each vector file of ``folder`` in the kd order of its entries' index coordinates
    (near entries share row groups, as merge writes them) and the index for the new rows (same
    basis and coordinates). The new version is staged beside the folder, the other files linked
    or copied into it, and switched in with the journal (:func:`llkl_db.io.folder.replacing`):
    a kill at any step leaves the old dataset or the new one. Memory: the index and one bucket
    of rows (:func:`llkl_db.io.ordered.write_in_order`); disk: a second copy of the vectors."""
    from dataclasses import replace

    import polars as pl

    from llkl_db.io import swap
    from llkl_db.io.folder import ROWS_PER_GROUP, replacing
    from llkl_db.io.ordered import bucket_rows, write_in_order
    from llkl_db.schema import arrow_schema

    index = folder.read_index()
    info = index.info
    rewritten = {folder.root / rel for rel in index.files} | {folder.index_path(n) for n in REWRITTEN_INDEX_FILES}
    schema = arrow_schema("vectors", info.n_texts)
    rows = bucket_rows(info.n_texts, ROWS_PER_GROUP)
    new_entries, new_coords, new_res = [], [], []
    with replacing(folder.root) as staging:
        _link_tree(folder.root, staging.root, rewritten)
        for fi, rel in enumerate(index.files):
            positions = np.flatnonzero(index.file_of == fi)
            positions = positions[np.argsort(index.row_of[positions])]
            order = positions[mindex.kd_order(index.coords[positions])]
            where = np.empty(order.size, dtype=np.int64)  # output row of each stored row
            where[index.row_of[order]] = np.arange(order.size)
            path = staging.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with staging.vector_writer(path) as write:
                write_in_order([folder.root / rel], [where], write, schema, staging.root / ".sort", rows)
            new_entries.append(
                index.entries[order].with_columns(pl.lit(rel).alias("file"), pl.Series("row", np.arange(order.size)))
            )
            new_coords.append(index.coords[order])
            new_res.append(index.residuals[order])
        swap.fault_point("reorder:vectors")
        entries = pl.concat(new_entries)
        vector_files = {
            rel: [int(count), (staging.root / rel).stat().st_size] for rel, (count, _) in info.vector_files.items()
        }
        info = replace(
            info, entry_ids_sha256=entry_ids_digest(entries["entry_id"].to_list()), vector_files=vector_files
        )
        write_index(staging, info, entries, np.concatenate(new_coords), np.concatenate(new_res), index.mu, index.basis)
    return info


def _link_tree(source: Path, target: Path, skip: set[Path]) -> None:
    """Hard-link (else copy) every file under ``source`` into ``target``, except ``skip``."""
    import os
    import shutil

    for path in sorted(source.rglob("*")):
        out = target / path.relative_to(source)
        if path in skip:
            continue
        if path.is_symlink():
            out.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(path), out)
        elif path.is_dir():
            out.mkdir(parents=True, exist_ok=True)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, out)
            except OSError:
                shutil.copy2(path, out)
