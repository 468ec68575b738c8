"""Rewrite the rows of vector files in a new order with bounded memory (an external bucket sort).

Pass 1 reads the sources READ_BATCH_ROWS rows at a time and appends each row to the scratch file of its
output bucket (``bucket_rows`` consecutive output positions; Arrow IPC, zstd); pass 2 reads one
bucket at a time, sorts it and writes it. Memory: one input batch and one bucket (about
``BUCKET_BYTES``); disk: a compressed copy of the rows in ``scratch``, each bucket file removed
once written.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from llkl_db.errors import LlklError

from .parquet import guarded
from .vectors import READ_BATCH_ROWS, ROW_METADATA_BYTES, check_vector_footer

BUCKET_BYTES = 32 << 20  # a bucket in memory takes several times this (decoded, sorted, encoded)
POSITION = "_position"


def bucket_rows(n_texts: int, rows_per_group: int) -> int:
    """Rows per bucket: about BUCKET_BYTES, a whole number of row groups (so the output's row
    groups are those of a single write of all rows)."""
    per_row = n_texts * 8 + ROW_METADATA_BYTES // 64
    return max(1, BUCKET_BYTES // per_row // rows_per_group) * rows_per_group


def write_in_order(
    sources: Sequence[Path],
    positions: Sequence[np.ndarray],
    write: Callable,
    schema,
    scratch: Path,
    rows: int,
) -> None:
    """Write every row of ``sources`` through ``write(table)`` (tables of ``schema``), the row
    ``i`` of ``sources[f]`` at output position ``positions[f][i]`` (together a permutation of
    0..M-1), ``rows`` output rows per bucket. ``scratch`` is created and removed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    total = sum(int(p.size) for p in positions)
    n_buckets = max(1, -(-total // rows))
    scratch.mkdir()
    options = pa.ipc.IpcWriteOptions(compression=pa.Codec("zstd", compression_level=1))
    n_texts = schema.field("loglik").type.list_size
    try:
        for path, where in zip(sources, positions, strict=True):
            check_vector_footer(path, n_texts)
            at = 0
            with guarded(path):
                pf = pq.ParquetFile(path, pre_buffer=False)
                try:
                    for batch in pf.iter_batches(batch_size=READ_BATCH_ROWS):
                        table = _conform(pa.Table.from_batches([batch]), schema)
                        pos = where[at : at + table.num_rows]
                        if pos.size != table.num_rows:
                            raise LlklError(f"{path}: rows changed while rewriting it")
                        at += table.num_rows
                        table = table.append_column(POSITION, pa.array(pos, pa.int64()))
                        bucket = pos // rows
                        for b in np.unique(bucket):
                            _append(scratch / f"{int(b)}.arrow", table.take(np.flatnonzero(bucket == b)), options)
                finally:
                    pf.close()
            if at != where.size:
                raise LlklError(f"{path}: rows changed while rewriting it")
        for b in range(n_buckets):
            part = scratch / f"{b}.arrow"
            table = _read_bucket(part)
            got = table.column(POSITION).to_numpy()
            order = np.argsort(got, kind="stable")
            expected = np.arange(b * rows, min((b + 1) * rows, total))
            if not np.array_equal(got[order], expected):
                raise LlklError(f"{scratch}: bucket {b} does not hold output rows {expected[0]}..{expected[-1]}")
            write(table.take(order).drop_columns([POSITION]))
            part.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _conform(table, schema):
    """``table`` with the columns of ``schema`` (absent ones null), cast to it."""
    import pyarrow as pa

    columns = [
        table[name] if name in table.column_names else pa.nulls(table.num_rows, schema.field(name).type)
        for name in schema.names
    ]
    return pa.table(columns, names=schema.names).cast(schema)


def _append(path: Path, table, options) -> None:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    data = sink.getvalue()
    with open(path, "ab") as f:
        f.write(len(data).to_bytes(8, "little"))
        f.write(data)


def _read_bucket(path: Path):
    import pyarrow as pa

    if not path.is_file():
        raise LlklError(f"{path}: missing scratch bucket (rows lost while rewriting)")
    data = path.read_bytes()
    tables, at = [], 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 8], "little")
        tables.append(pa.ipc.open_stream(pa.py_buffer(data[at + 8 : at + 8 + size])).read_all())
        at += 8 + size
    return pa.concat_tables(tables)
