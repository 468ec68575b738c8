"""Read a few rows of vector files by fetching only their Parquet row groups.

A :class:`RowGroupReader` opens each file once (its footer), maps rows to row groups, and reads
``loglik`` and ``entry_id`` of the groups that hold the requested rows, from a local path or any
file object (fsspec: HTTP, the Hub). ``bytes_read`` counts what came through the file objects.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from llkl_db.errors import LlklError

READ_COLUMNS = ("entry_id", "loglik")


class CountingFile(io.RawIOBase):
    """A read-only file object that counts the bytes read through it."""

    def __init__(self, raw, counter: list[int]) -> None:
        self._raw = raw
        self._counter = counter

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._counter[0] += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def primitive_numpy(array, dtype) -> np.ndarray:
    """A read-only numpy view of a primitive Arrow array without nulls, or of the values of a
    fixed-size list array (flattened). Straight from the buffers: pyarrow's ``to_numpy`` imports
    pandas (0.3 s of a cold query)."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if isinstance(array.type, pa.FixedSizeListType):
        array = array.flatten()
    if array.null_count:
        raise ValueError("null values")
    dtype = np.dtype(dtype)
    if array.type.bit_width != dtype.itemsize * 8:
        raise ValueError(f"{array.type} is not {dtype}")
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def local_opener(root: str) -> Callable[[str], object]:
    """Local files are opened by path: pyarrow reads them natively (faster than a Python file),
    and the bytes read are counted from the footer (column chunk sizes)."""
    return lambda rel: f"{root}/{rel}"


class RowGroupReader:
    """Rows of the vector files named by relative path, through ``opener(relpath)``."""

    keep_groups = 4  # decoded row groups kept (a few MB each at N = 10,000)

    def __init__(self, opener: Callable[[str], object], n_texts: int, where: str = "") -> None:
        self._opener = opener
        self._n = n_texts
        self._where = where
        self._files: dict[str, tuple] = {}
        self._counter = [0]
        self._recent: OrderedDict[tuple[str, int], tuple] = OrderedDict()

    @property
    def bytes_read(self) -> int:
        return self._counter[0]

    def _file(self, rel: str):
        if rel not in self._files:
            import pyarrow.parquet as pq

            try:
                source = self._opener(rel)
                native = isinstance(source, str)
                # pre_buffer off: one row group is read with fewer, larger reads (measured faster)
                pf = pq.ParquetFile(source if native else CountingFile(source, self._counter), pre_buffer=False)
            except Exception as exc:
                raise LlklError(f"{self._where}{rel}: cannot read the vector file ({_short(exc)})") from None
            if native:
                self._counter[0] += pf.metadata.serialized_size
            sizes = np.array([pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)])
            starts = np.concatenate([[0], np.cumsum(sizes)])
            self._files[rel] = (pf, starts, native)
        return self._files[rel]

    def read(self, rel: str, rows: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(rows returned, their entry ids, their float32 loglik) for every row of the row groups
        that hold ``rows``, in file order. The last few groups read stay decoded (a query's own
        group is usually its first candidates' too)."""
        pf, starts, native = self._file(rel)
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= starts[-1]):
            raise LlklError(f"{self._where}{rel}: row {int(rows.max())} is past the file's {int(starts[-1])} rows")
        groups = np.unique(np.searchsorted(starts, rows, side="right") - 1).tolist()
        missing = [g for g in groups if (rel, g) not in self._recent]
        if missing:
            self._read_groups(rel, pf, starts, native, missing)
        parts = [self._recent[(rel, g)] for g in groups]
        for g in groups:
            self._recent.move_to_end((rel, g))
        while len(self._recent) > max(self.keep_groups, len(groups)):
            self._recent.popitem(last=False)
        out_rows = np.concatenate([p[0] for p in parts])
        ids = [i for p in parts for i in p[1]]
        values = np.concatenate([p[2] for p in parts])  # a copy: callers clip in place
        return out_rows, ids, values

    def _read_groups(self, rel: str, pf, starts, native: bool, groups: list[int]) -> None:
        try:
            table = pf.read_row_groups(groups, columns=list(READ_COLUMNS))
        except Exception as exc:
            raise LlklError(f"{self._where}{rel}: reading row groups failed ({_short(exc)})") from None
        if native:
            md = pf.metadata
            first = md.row_group(0)
            cols = [c for c in range(md.num_columns) if first.column(c).path_in_schema.split(".")[0] in READ_COLUMNS]
            self._counter[0] += sum(md.row_group(int(g)).column(c).total_compressed_size for g in groups for c in cols)
        loglik = table.column("loglik").combine_chunks()
        try:
            values = primitive_numpy(loglik, np.float32).reshape(len(loglik), self._n)
        except ValueError as exc:
            raise LlklError(f"{self._where}{rel}: loglik is not a list of {self._n} float32 ({exc})") from None
        ids = table.column("entry_id").to_pylist()
        at = 0
        for g in groups:
            size = int(starts[g + 1] - starts[g])
            self._recent[(rel, g)] = (np.arange(starts[g], starts[g + 1]), ids[at : at + size], values[at : at + size])
            at += size

    def close(self) -> None:
        for pf, *_ in self._files.values():
            pf.close()
        self._files.clear()
        self._recent.clear()


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
