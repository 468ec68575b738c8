"""The search index of a dataset (schema v1, ``index/``): read, write and check it.

    index/index.json       format version, what it was built from, d, clip thresholds, digests
    index/entries.parquet  one row per entry in index order: the metadata columns of the vector
                           files, ``file`` (relative path), ``row`` and ``row_group`` within it
    index/coords.bin       K x d float32, little-endian, row-major: the coordinates
    index/residuals.bin    K float64, little-endian: the residual norms
    index/basis.parquet    ``vector`` (fixed_size_list<float32, N>): row 0 the mean mu, rows
                           1..d the orthonormal basis

Index order is storage order: entries sorted by file, then row. The coordinates are memory-mapped,
not decoded: a cold query reads what its bounds touch. The index is refused (one line) when it was
built for another dataset version, text set or vector files, or a file is truncated (its size is
checked on every open; the digests of the raw arrays and of the entry ids by ``validate``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llkl_db.errors import LlklError

from .atomic import atomic_path, write_text_atomic
from .parquet import read_footer, read_frame
from .rowgroups import primitive_numpy
from .vectors import FILE_COLUMN, FILE_SLACK_BYTES, METADATA_COLUMNS, ROW_METADATA_BYTES

if TYPE_CHECKING:
    import polars as pl

    from .folder import DatasetFolder

INDEX_FORMAT_VERSION = 2
BUILD_HINT = "rebuild it with `llkl-db index DIR`"
# The raw arrays: file name -> (dtype, shape given K and d).
ARRAYS = {"coords.bin": ("<f4", lambda k, d: [k, d]), "residuals.bin": ("<f8", lambda k, d: [k])}


@dataclass(frozen=True)
class IndexInfo:
    """``index/index.json``."""

    index_format_version: int
    dataset_version: str
    text_set_sha256: str
    n_texts: int
    n_entries: int
    d: int
    clip_thresholds: dict[str, float]  # "outputs" (layer null) and "layers"
    explained_variance_fraction: float
    entry_ids_sha256: str
    created_at: str
    vector_files: dict[str, list[int]] = field(default_factory=dict)  # relative path -> [rows, bytes]
    arrays: dict[str, dict] = field(default_factory=dict)  # ARRAYS name -> dtype, shape, sha256
    basis_orthonormality_error: float = float("nan")  # ||B B^T - I||_F of the stored basis

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


@dataclass
class Index:
    """A loaded index: entries (with ``_file`` absolute and ``_row``), coordinates and basis."""

    info: IndexInfo
    entries: pl.DataFrame
    files: list[str]  # relative paths, in index order
    file_of: np.ndarray  # per entry: index into ``files``
    row_of: np.ndarray  # per entry: row within its file
    group_of: np.ndarray  # per entry: Parquet row group within its file
    coords: np.ndarray  # K x d float32 (memory-mapped, read-only)
    residuals: np.ndarray  # K float64
    mu: np.ndarray  # N float32
    basis: np.ndarray  # d x N float32

    @cached_property
    def ynorms(self) -> np.ndarray:
        """|y| per entry (float64)."""
        from llkl_db.math.index import coord_norms

        return coord_norms(self.coords)

    @cached_property
    def norms(self) -> np.ndarray:
        """sqrt(|y|^2 + r^2) = |c - mu| per entry (float64)."""
        return np.sqrt(np.square(self.ynorms) + np.square(self.residuals))


def entry_ids_digest(ids) -> str:
    """sha256 over the entry ids in index order, one per line (UTF-8)."""
    ids = [str(entry) for entry in ids]
    return hashlib.sha256(("\n".join(ids) + "\n" if ids else "").encode("utf-8")).hexdigest()


def write_index(folder: DatasetFolder, info: IndexInfo, entries, coords, residuals, mu, basis) -> IndexInfo:
    """Write the index files atomically (entries: metadata columns plus ``file``, ``row``, in
    index order), filling in ``info.arrays`` and ``info.basis_orthonormality_error``. index.json
    is written last: it is what marks an index present. Returns the info written."""
    from dataclasses import replace

    import pyarrow as pa
    import pyarrow.parquet as pq

    from llkl_db.math.index import orthonormality_error

    k, d = coords.shape
    n = mu.shape[0]
    table = entries.select(METADATA_COLUMNS + ["file", "row"]).to_arrow()
    table = table.append_column("row_group", pa.array(_row_groups(folder, entries), pa.int32()))
    vectors = np.vstack([np.asarray(mu, np.float32)[None, :], np.asarray(basis, np.float32)])
    basis_table = pa.table({"vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), n)})
    folder.index_dir.mkdir(parents=True, exist_ok=True)
    folder.index_path("index.json").unlink(missing_ok=True)
    with atomic_path(folder.index_path("entries.parquet")) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    with atomic_path(folder.index_path("basis.parquet")) as tmp:
        pq.write_table(basis_table, tmp, compression="zstd")
    arrays = {}
    for name, values in (("coords.bin", coords), ("residuals.bin", residuals)):
        dtype, shape = ARRAYS[name]
        data = np.ascontiguousarray(values, dtype=dtype)
        with atomic_path(folder.index_path(name)) as tmp:
            data.tofile(tmp)
        arrays[name] = {"dtype": dtype, "shape": shape(k, d), "sha256": hashlib.sha256(data.data).hexdigest()}
    info = replace(info, arrays=arrays, basis_orthonormality_error=orthonormality_error(basis))
    write_text_atomic(folder.index_path("index.json"), info.to_json())
    return info


def _row_groups(folder: DatasetFolder, entries) -> np.ndarray:
    """The Parquet row group of each entry within its vector file (from the files' footers)."""
    out = np.empty(entries.height, dtype=np.int32)
    files = entries["file"].to_numpy()
    rows = entries["row"].to_numpy()
    for rel in dict.fromkeys(files.tolist()):
        at = files == rel
        starts = np.cumsum(read_footer(folder.root / rel, "vector file").row_group_rows)
        out[at] = np.searchsorted(starts, rows[at], side="right")
    return out


def retag_index(folder: DatasetFolder, dataset_version: str) -> None:
    """Rewrite index.json with another dataset version (same data, new release tag)."""
    from dataclasses import replace

    path = folder.index_path("index.json")
    write_text_atomic(path, replace(_read_info(path), dataset_version=dataset_version).to_json())


def _read_info(path: Path) -> IndexInfo:
    try:
        raw = json.loads(path.read_text("utf-8"))
        if raw.get("index_format_version") != INDEX_FORMAT_VERSION:
            raise LlklError(
                f"{path}: index format version {raw.get('index_format_version')!r}, this llkl-db reads "
                f"{INDEX_FORMAT_VERSION}; {BUILD_HINT}"
            )
        info = IndexInfo(**raw)
        if not (isinstance(info.basis_orthonormality_error, float) and 0.0 <= info.basis_orthonormality_error < 1.0):
            raise LlklError(f"{path}: basis_orthonormality_error must be a number in [0, 1); {BUILD_HINT}")
        return info
    except LlklError:
        raise
    except (ValueError, TypeError, AttributeError, OSError) as exc:
        raise LlklError(f"{path}: not a readable index file ({str(exc).splitlines()[0][:160]}); {BUILD_HINT}") from None


def _read_parquet(path: Path, what: str):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).read()  # (not read_table: pyarrow.dataset costs 0.3 s to import)
    except Exception as exc:
        raise LlklError(
            f"{path}: truncated or unreadable {what} ({str(exc).splitlines()[0][:160]}); {BUILD_HINT}"
        ) from None


def _map_array(folder: DatasetFolder, info: IndexInfo, name: str) -> np.ndarray:
    """The raw array ``name`` memory-mapped read-only, after checking what index.json says of it
    and the file's size (a truncated or foreign file is one line; its digest is validate's)."""
    path = folder.index_path(name)
    dtype, shape = ARRAYS[name]
    expected = shape(info.n_entries, info.d)
    recorded = info.arrays.get(name) if isinstance(info.arrays, dict) else None
    if not isinstance(recorded, dict) or recorded.get("dtype") != dtype or recorded.get("shape") != expected:
        raise LlklError(
            f"{folder.index_path('index.json')}: {name} must be recorded as {dtype} of shape {expected}; {BUILD_HINT}"
        )
    size = int(np.prod(expected)) * np.dtype(dtype).itemsize
    try:
        actual = path.stat().st_size
    except OSError as exc:
        raise LlklError(
            f"{path}: cannot read the index array ({exc.strerror or type(exc).__name__}); {BUILD_HINT}"
        ) from None
    if actual != size:
        raise LlklError(
            f"{path}: {actual} bytes, expected {size} ({dtype} x {expected}; truncated or of another build); {BUILD_HINT}"
        )
    if size == 0:
        return np.zeros(expected, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=tuple(expected))


def array_digest(path: Path) -> str:
    """sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def read_index(folder: DatasetFolder, check_files: bool = True) -> Index:
    """Read and check the index of ``folder`` against its metadata (and, when ``check_files``,
    the vector files' sizes it recorded); the raw arrays are memory-mapped."""
    import polars as pl

    path = folder.index_path("index.json")
    info = _read_info(path)
    meta = folder.metadata
    if info.dataset_version != meta.dataset_version:
        raise LlklError(
            f"{path}: built for dataset version {info.dataset_version}, the dataset is {meta.dataset_version}; {BUILD_HINT}"
        )
    if info.text_set_sha256 != meta.text_set_sha256 or info.n_texts != meta.n_texts:
        raise LlklError(
            f"{path}: built for another text set (sha256 {info.text_set_sha256[:12]}, N={info.n_texts}), "
            f"the dataset's is {meta.text_set_sha256[:12]} (N={meta.n_texts}); {BUILD_HINT}"
        )
    recorded = {"outputs": meta.clip_threshold, "layers": meta.layer_clip_threshold}
    for name, value in info.clip_thresholds.items():
        if recorded.get(name) is not None and recorded[name] != value:
            raise LlklError(
                f"{path}: built with clip threshold {name}={value}, the dataset records {recorded[name]}; {BUILD_HINT}"
            )
    if check_files:
        for rel, (_, size) in info.vector_files.items():
            target = folder.root / rel
            if not target.is_file() or target.stat().st_size != size:
                raise LlklError(f"{path}: built for another version of {rel} (changed or missing since); {BUILD_HINT}")
        present = {str(p.relative_to(folder.root)) for p in folder.vector_files()}
        extra = sorted(present - set(info.vector_files))
        if info.vector_files and extra:
            raise LlklError(f"{path}: vector file {extra[0]} is not in the index (added since); {BUILD_HINT}")
    epath = folder.index_path("entries.parquet")
    try:  # Polars: 5x faster than pyarrow then from_arrow at a million entries
        entries = read_frame(
            epath,
            rows=info.n_entries,
            max_bytes=info.n_entries * ROW_METADATA_BYTES + FILE_SLACK_BYTES,
            what="index entries file",
        )
    except LlklError as exc:
        raise LlklError(f"{exc}; {BUILD_HINT}") from None
    basis_table = _read_parquet(folder.index_path("basis.parquet"), "index basis")
    missing = [c for c in ["entry_id", "file", "row", "row_group"] if c not in entries.columns]
    if missing:
        raise LlklError(f"{epath}: missing column(s) {', '.join(missing)}; {BUILD_HINT}")
    if entries["file"].dtype != pl.String or entries["file"].null_count():
        raise LlklError(f"{epath}: file must be non-null strings; {BUILD_HINT}")
    for name in ("row", "row_group"):
        if not entries[name].dtype.is_integer() or entries[name].null_count() or (entries[name] < 0).any():
            raise LlklError(f"{epath}: {name} must be non-negative integers; {BUILD_HINT}")
    coords = _map_array(folder, info, "coords.bin")
    residuals = _map_array(folder, info, "residuals.bin")
    vectors = basis_table.column("vector").combine_chunks()
    bpath = folder.index_path("basis.parquet")
    if vectors.type.list_size != info.n_texts or len(vectors) != info.d + 1:
        raise LlklError(f"{bpath}: expected {info.d + 1} vectors of {info.n_texts}; {BUILD_HINT}")
    try:
        vectors = primitive_numpy(vectors, np.float32).reshape(info.d + 1, info.n_texts)
    except ValueError as exc:
        raise LlklError(f"{bpath}: bad basis vectors ({exc}); {BUILD_HINT}") from None
    files = entries["file"].unique().sort().to_list()
    file_of = (entries["file"].rank("dense") - 1).to_numpy()
    row_of = entries["row"].to_numpy().astype(np.int64)
    group_of = entries["row_group"].to_numpy().astype(np.int64)
    paths = pl.Series(FILE_COLUMN, [f"{folder.root}/{f}" for f in files])
    entries = entries.with_columns(paths.gather(file_of)).select(METADATA_COLUMNS + [FILE_COLUMN])
    return Index(
        info=info,
        entries=entries,
        files=[str(f) for f in files],
        file_of=file_of.astype(np.int64),
        row_of=row_of,
        group_of=group_of,
        coords=coords,
        residuals=residuals,
        mu=vectors[0].astype(np.float32),
        basis=np.ascontiguousarray(vectors[1:], dtype=np.float32),
    )
