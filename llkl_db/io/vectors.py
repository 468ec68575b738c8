"""Vector files: write one Parquet file of entries; scan and check a folder of them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llkl_db.errors import LlklError
from llkl_db.schema import PARQUET_VERSION_KEY, SCHEMA_VERSION, arrow_schema, field_names

from .atomic import atomic_path
from .parquet import check_footer, check_regular, guarded, read_footer
from .texts import TextSetKey

VECTOR_DIR = "vectors"
# text_ids is set only in partial shards (llkl_db.place.shard), never in a dataset's entries.
METADATA_COLUMNS = [c for c in field_names("vectors") if c not in ("loglik", "n_tokens", "text_ids")]
FILE_COLUMN = "_file"
# A log-likelihood is at most 0; values up to MAX_LOGLIK are float rounding, larger ones are refused.
MAX_LOGLIK = 1e-3
# Limits checked on a vector file's footer before any column is decoded (see vector_file_limits).
MAX_ENTRIES_PER_FILE = 100_000
MAX_VALUES_PER_FILE = 2**28  # entries x N: 1 GiB of float32 log-likelihoods
ROW_METADATA_BYTES = 64 * 1024  # metadata columns of one entry, uncompressed
FILE_SLACK_BYTES = 1 << 20
# Rows decoded at once by the streaming readers, without pre-buffering (which holds far more).
READ_BATCH_ROWS = 256


def vector_file_limits(n_texts: int) -> tuple[int, int]:
    """The most entries a vector file of N texts may hold, and the most bytes an entry may
    decompress to: its loglik (float32) and n_tokens (int32) vectors with 50% headroom for the
    Parquet encoding, plus ROW_METADATA_BYTES of metadata. A file may also use FILE_SLACK_BYTES."""
    max_rows = max(1, min(MAX_ENTRIES_PER_FILE, MAX_VALUES_PER_FILE // max(n_texts, 1)))
    return max_rows, int(n_texts * 8 * 1.5) + ROW_METADATA_BYTES


def check_vector_footer(path: Path, n_texts: int) -> dict[str, str]:
    """Read a vector file's footer and refuse one that claims more entries or bytes than
    :func:`vector_file_limits` allows. Returns the footer's key-value metadata."""
    footer = read_footer(path, "Parquet file")
    max_rows, row_bytes = vector_file_limits(n_texts)
    check_footer(
        path,
        footer,
        max_rows=max_rows,
        max_bytes=footer.num_rows * row_bytes + FILE_SLACK_BYTES,
        what="vector file",
    )
    return footer.metadata


def entry_id(model_id: str, revision: str, layer: int | None = None, variant: str | None = None) -> str:
    """The readable, stable id of an entry: MODEL@REV[:L{layer}][:{variant}]."""
    out = f"{model_id}@{revision}"
    if layer is not None:
        out += f":L{layer}"
    if variant:
        out += f":{variant}"
    return out


def write_vectors(path: Path, rows: Sequence[dict], n_texts: int) -> None:
    """Write entries (dicts keyed by schema field; loglik as an N-vector) to one Parquet file,
    atomically, with zstd compression and the schema version in its metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema("vectors", n_texts)
    columns: dict[str, list] = {name: [] for name in schema.names}
    for row in rows:
        unknown = set(row) - set(schema.names)
        if unknown:
            raise ValueError(f"unknown vector fields: {sorted(unknown)}")
        for name in schema.names:
            value = row.get(name)
            if name in ("loglik", "n_tokens") and value is not None:
                value = np.asarray(value, dtype=np.float32 if name == "loglik" else np.int32)
                if value.shape != (n_texts,):
                    raise LlklError(
                        f"{path}: {name} of {row.get('entry_id')} has shape {value.shape}, expected ({n_texts},)"
                    )
                value = value.tolist()
            columns[name].append(value)
    table = pa.table(columns, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def check_file_schema(path: Path, n_texts: int) -> list[str]:
    """Check one file's footer: a regular file, readable, within the size limits of
    :func:`vector_file_limits`, our schema version, the columns and vector length.
    Returns the file's column names."""
    import polars as pl

    metadata = check_vector_footer(path, n_texts)
    with guarded(path):
        schema = pl.read_parquet_schema(path)
    version = metadata.get(PARQUET_VERSION_KEY.decode())
    if version != str(SCHEMA_VERSION):
        shown = version if version else "missing"
        raise LlklError(f"{path}: schema version {shown}, this llkl-db reads version {SCHEMA_VERSION}")
    missing = [
        c for c in ["entry_id", "model_id", "revision", "text_set", "text_set_sha256", "loglik"] if c not in schema
    ]
    if missing:
        raise LlklError(f"{path}: missing column(s) {', '.join(missing)}")
    loglik_type = schema["loglik"]
    if not (isinstance(loglik_type, pl.Array) and loglik_type.size == n_texts and loglik_type.inner.is_float()):
        raise LlklError(f"{path}: loglik must be a fixed-size list of {n_texts} floats, found {loglik_type}")
    return list(schema.names())


def scan_entries(files: list[Path], n_texts: int, text_set: TextSetKey, root: Path | None = None):
    """Read the metadata columns of all files into one DataFrame (with a ``_file`` column),
    rejecting unreadable files, other text sets, duplicate entry ids and an empty result."""
    import polars as pl

    if not files:
        where = f"{root / VECTOR_DIR}: " if root is not None else ""
        raise LlklError(f"{where}empty dataset: no vector files (*.parquet)")
    frames = []
    for path in files:
        names = check_file_schema(path, n_texts)
        with guarded(path):
            df = pl.read_parquet(path, columns=[c for c in METADATA_COLUMNS if c in names])
        frames.append(df.with_columns(pl.lit(str(path)).alias(FILE_COLUMN)))
    entries = pl.concat(frames, how="diagonal_relaxed")
    for column in METADATA_COLUMNS:
        if column not in entries.columns:
            entries = entries.with_columns(pl.lit(None).alias(column))
    entries = entries.select(METADATA_COLUMNS + [FILE_COLUMN])
    if entries.height == 0:
        where = f"{root / VECTOR_DIR}: " if root is not None else ""
        raise LlklError(f"{where}empty dataset: {len(files)} vector file(s) hold no entries")
    wrong = entries.filter((pl.col("text_set") != text_set.name) | (pl.col("text_set_sha256") != text_set.sha256))
    if wrong.height:
        row = wrong.row(0, named=True)
        raise LlklError(
            f"{row[FILE_COLUMN]}: entry {row['entry_id']} is on text set {row['text_set']} "
            f"(sha256 {row['text_set_sha256'][:12]}), the dataset's is {text_set.name} (sha256 {text_set.sha256[:12]})"
        )
    dup = entries.filter(pl.col("entry_id").is_duplicated()).sort("entry_id")
    if dup.height:
        first = dup.row(0, named=True)
        others = dup.filter(pl.col("entry_id") == first["entry_id"])[FILE_COLUMN].to_list()
        raise LlklError(f"{others[-1]}: duplicate entry id {first['entry_id']} (also in {others[0]})")
    return entries


def read_loglik(entries, n_texts: int) -> np.ndarray:
    """The K x N float32 matrix of ``entries`` (a frame from :func:`scan_entries`), in row order,
    rejecting NaN and infinite values, and values above MAX_LOGLIK (a log-likelihood is at most
    0), with the file, entry and text named."""
    import polars as pl

    out = np.empty((entries.height, n_texts), dtype=np.float32)
    positions = entries.with_row_index("_pos")
    for file, group in positions.group_by(FILE_COLUMN, maintain_order=True):
        path = file[0]
        ids = group["entry_id"]
        if not Path(path).exists():
            raise LlklError(f"{path}: missing vector file (removed since the dataset was opened?)")
        check_regular(path)
        check_vector_footer(Path(path), n_texts)  # the file may have changed since it was scanned
        with guarded(path):
            df = pl.read_parquet(path, columns=["entry_id", "loglik"])
        if df.height != ids.len():
            df = df.filter(pl.col("entry_id").is_in(ids.implode()))
        df = ids.to_frame().join(df, on="entry_id", how="left", maintain_order="left")
        block = df["loglik"].to_numpy()
        if block.dtype != np.float32:
            block = block.astype(np.float32)
        _check_values(path, ids, block)
        out[group["_pos"].to_numpy()] = block
    return out


def _check_values(path, ids, block: np.ndarray) -> None:
    """Refuse NaN, infinite and positive log-likelihoods, naming the file, entry and text."""
    bad = ~np.isfinite(block)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise LlklError(
            f"{path}: entry {ids[row]} has {int(bad[row].sum())} non-finite log-likelihood value(s) (NaN or inf)"
        )
    positive = block > MAX_LOGLIK
    if positive.any():
        row = int(np.flatnonzero(positive.any(axis=1))[0])
        text = int(np.flatnonzero(positive[row])[0])
        raise LlklError(
            f"{path}: entry {ids[row]} has a positive log-likelihood {float(block[row, text]):.6g} at text "
            f"{text} ({int(positive[row].sum())} value(s) above {MAX_LOGLIK}); a log-likelihood is at most 0"
        )


def iter_loglik(entries, n_texts: int, block_rows: int):
    """The matrix of :func:`read_loglik` a block of ``block_rows`` rows at a time: yields (first
    position, float32 block). ``entries`` must list whole files in storage order (as
    :func:`scan_entries` gives them); memory holds one block and READ_BATCH_ROWS rows decoded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts: list[np.ndarray] = []
    held = 0
    start = 0
    for file, group in entries.group_by(FILE_COLUMN, maintain_order=True):
        path = file[0]
        ids = group["entry_id"].to_list()
        if not Path(path).exists():
            raise LlklError(f"{path}: missing vector file (removed since the dataset was opened?)")
        check_regular(path)
        check_vector_footer(Path(path), n_texts)
        at = 0
        with guarded(path):
            pf = pq.ParquetFile(path, pre_buffer=False)
            try:
                for batch in pf.iter_batches(batch_size=READ_BATCH_ROWS, columns=["entry_id", "loglik"]):
                    got = batch.column("entry_id").to_pylist()
                    column = batch.column("loglik")
                    if got != ids[at : at + len(got)] or column.null_count:
                        raise LlklError(f"{path}: rows changed since the dataset was scanned")
                    if not isinstance(column, pa.FixedSizeListArray):
                        column = column.cast(pa.list_(column.type.value_type, n_texts))
                    flat = column.flatten().to_numpy(zero_copy_only=False)
                    block = np.array(flat.reshape(len(got), n_texts), dtype=np.float32)  # writable: callers clip
                    _check_values(path, got, block)
                    parts.append(block)
                    held += block.shape[0]
                    at += len(got)
                    while held >= block_rows:
                        whole = np.concatenate(parts) if len(parts) > 1 else parts[0]
                        yield start, whole[:block_rows]
                        start += block_rows
                        parts = [whole[block_rows:]] if whole.shape[0] > block_rows else []
                        held -= block_rows
            finally:
                pf.close()
        if at != len(ids):
            raise LlklError(f"{path}: rows changed since the dataset was scanned")
    if held:
        yield start, np.concatenate(parts) if len(parts) > 1 else parts[0]
