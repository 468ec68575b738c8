"""The one boundary between llkl-db and the Parquet libraries: every Parquet file a reader opens
(vectors, texts, tables, scores) goes through :func:`read_frame` or :func:`guarded`.

- Only regular files are read (a symlink is followed and its target must be a regular file, as in
  a Hugging Face cache snapshot); a FIFO, device or socket named ``*.parquet`` would block or
  never end, so it is refused before it is opened.
- The footer is read first (``pyarrow.parquet.read_metadata``, which reads the footer only) and
  its row count and uncompressed sizes are checked against limits given by the caller, so that a
  small file that decompresses to gigabytes, or a footer that claims 10^8 rows, is refused before
  a single column is decoded.
- Any exception of the Parquet libraries, a Polars panic included (``PanicException`` derives
  from ``BaseException``, not ``Exception``), becomes a one-line :class:`LlklError` naming the file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from llkl_db.errors import LlklError

T = TypeVar("T")

# Never read a table, score or text-set file that decompresses to more than this.
MAX_TABLE_BYTES = 512 * 2**20


def short(exc: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), or its type."""
    text = str(exc)
    return text.splitlines()[0][:200] if text.strip() else type(exc).__name__


def _is_parquet_failure(exc: BaseException) -> bool:
    # A Polars panic (pyo3_runtime.PanicException) derives from BaseException only.
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


@contextmanager
def guarded(path: str | os.PathLike, what: str = "Parquet file") -> Iterator[None]:
    """Turn any failure of the Parquet libraries inside the block (a panic included) into a
    one-line :class:`LlklError` naming ``path``. LlklError, KeyboardInterrupt and SystemExit pass."""
    try:
        yield
    except LlklError:
        raise
    except BaseException as exc:
        if not _is_parquet_failure(exc):
            raise
        raise LlklError(f"{path}: not a readable {what} ({short(exc)})") from None


def check_regular(path: str | os.PathLike) -> None:
    """Refuse what is not a regular file (after following symlinks): missing, a folder, a FIFO,
    a device or a socket. Reading a FIFO would wait forever for a writer."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise LlklError(f"{path}: missing file (removed since the dataset was opened?)") from None
    except OSError as exc:
        raise LlklError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(mode):
        raise LlklError(f"{path}: not a regular file ({_kind(mode)}); only regular files are read")


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a plain file"


@dataclass(frozen=True)
class Footer:
    """What a Parquet footer claims: rows, row groups and sizes (bytes, before decompression:
    ``uncompressed_bytes`` is the sum over row groups and columns of the uncompressed sizes)."""

    num_rows: int
    row_group_rows: tuple[int, ...]
    uncompressed_bytes: int
    metadata: dict[str, str]


def read_footer(path: str | os.PathLike, what: str = "Parquet file") -> Footer:
    """Read and check the footer of ``path`` (a regular file) without decoding any column."""
    import pyarrow.parquet as pq

    check_regular(path)
    with guarded(path, what):
        meta = pq.read_metadata(path)
        groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
        rows = tuple(int(g.num_rows) for g in groups)
        size = 0
        for g in groups:
            columns = sum(int(g.column(j).total_uncompressed_size) for j in range(g.num_columns))
            size += max(columns, int(g.total_byte_size))
        kv = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in (meta.metadata or {}).items()}
    if any(r < 0 for r in rows) or sum(rows) != meta.num_rows or size < 0:
        raise LlklError(f"{path}: inconsistent Parquet footer ({meta.num_rows} rows, row groups claim {sum(rows)})")
    return Footer(int(meta.num_rows), rows, size, kv)


def check_footer(
    path: str | os.PathLike,
    footer: Footer,
    *,
    max_rows: int | None = None,
    rows: int | None = None,
    max_bytes: int,
    what: str = "Parquet file",
) -> None:
    """Refuse a footer whose row count or uncompressed size exceeds the caller's limits."""
    if rows is not None and footer.num_rows != rows:
        raise LlklError(f"{path}: {what} holds {footer.num_rows} rows, expected {rows}")
    if max_rows is not None and footer.num_rows > max_rows:
        raise LlklError(f"{path}: {what} claims {footer.num_rows} rows, more than the limit of {max_rows}")
    if footer.uncompressed_bytes > max_bytes:
        raise LlklError(
            f"{path}: {what} decompresses to {footer.uncompressed_bytes} bytes, more than the limit of "
            f"{max_bytes} for its {footer.num_rows} rows"
        )


def read_frame(
    path: str | os.PathLike,
    *,
    columns: list[str] | None = None,
    max_rows: int | None = None,
    rows: int | None = None,
    max_bytes: int = MAX_TABLE_BYTES,
    what: str = "Parquet file",
):
    """Read ``path`` as a Polars DataFrame after checking its footer against the limits."""
    import polars as pl

    footer = read_footer(path, what)
    check_footer(path, footer, max_rows=max_rows, rows=rows, max_bytes=max_bytes, what=what)
    with guarded(path, what):
        return pl.read_parquet(path, columns=columns)


def call(path: str | os.PathLike, fn: Callable[[], T], what: str = "Parquet file") -> T:
    """``fn()`` with its Parquet failures turned into a one-line LlklError naming ``path``."""
    with guarded(path, what):
        return fn()


def list_files(folder: str | os.PathLike, suffix: str = ".parquet") -> list[Path]:
    """The files named ``*suffix`` under ``folder`` (recursively, sorted), each checked to be a
    regular file. A subfolder that cannot be listed (or opened), or a ``*suffix`` entry that is not a regular
    file (a FIFO, a device, a socket, a dangling symlink), is a one-line LlklError: a reader never
    silently loads part of a folder. Symlinks to files are followed (a Hugging Face cache snapshot
    links to its blobs) and the target must be a regular file; symlinks to folders are
    followed too, each real folder listed once (a link loop cannot hang the listing)."""
    out: list[Path] = []
    pending = [Path(folder)]
    seen: set[tuple[int, int]] = set()
    while pending:
        current = pending.pop()
        try:
            info = os.stat(current)
        except OSError as exc:
            raise LlklError(f"{current}: cannot list folder ({exc.strerror or type(exc).__name__})") from None
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        try:
            with os.scandir(current) as it:
                items = list(it)
        except OSError as exc:
            raise LlklError(f"{current}: cannot list folder ({exc.strerror or type(exc).__name__})") from None
        for item in items:
            path = Path(item.path)
            try:
                is_dir = item.is_dir()
            except OSError as exc:
                raise LlklError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
            if is_dir:
                pending.append(path)
            elif item.name.endswith(suffix):
                check_regular(path)
                out.append(path)
    return sorted(out)
