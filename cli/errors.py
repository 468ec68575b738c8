"""One place for error handling: every failure a user can cause or meet becomes one line on
stderr (``Error: ...``) and a non-zero exit code, never a traceback.

- :class:`LlklError`: its own text and exit code. A :class:`BadValueError` names the library
  parameter; here it is shown under the command-line flag that sets it (``FLAGS``).
- ``OSError`` (disk full, permission denied, read-only file system, ...): the file and the problem
  by errno name, exit 1.
- ``MemoryError`` (numpy's ``_ArrayMemoryError`` is one) and Polars' out-of-memory compute errors:
  "out of memory", exit 1.
- Network failures (httpx, requests, huggingface_hub): "network error" and the first line, exit 1.
- Anything else is a bug, not a user error: one line naming the exception type and a hint to
  rerun with ``LLKL_DB_DEBUG=1``, which re-raises it so the traceback shows; exit 70 (EX_SOFTWARE).
- ``KeyboardInterrupt``, ``SystemExit`` and typer/click exits pass through untouched.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from typing import TypeVar

import click
import typer

from llkl_db.errors import BadValueError, LlklError
from llkl_db.escape import for_plain_terminal

F = TypeVar("F", bound=Callable)

DEBUG_ENV = "LLKL_DB_DEBUG"
BUG_EXIT_CODE = 70  # EX_SOFTWARE: an internal error, not bad input

# Library parameter -> the flag that sets it.
FLAGS = {
    "shard": "--shard",
    "layers": "--layers",
    "batch_size": "--batch-size",
    "variant": "--variant",
    "max_length": "--max-length",
    "window": "--window",
    "drop_jumps": "--drop-jumps",
    "max_pairs": "--max-pairs",
    "color": "--color",
    "method": "--method",
    "out": "--out",
    "per_source": "--per-source",
    "where": "--where",
    "k": "-k",
    "tag": "--tag",
    "dataset_version": "--version",
    "bos_policy": "--bos-policy",
    "definitions": "--definitions",
    "neighbours": "--neighbours",
    "d": "--dim",
    "texts": "--texts",
    "estimator": "--estimator",
}

# errno -> what a user reads.
ERRNO_PROBLEMS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "already exists",
    errno.EISDIR: "is a folder",
    errno.ENOTDIR: "not a folder",
    errno.ENOTEMPTY: "folder not empty",
    errno.EMFILE: "too many open files",
    errno.EIO: "input/output error",
    errno.ENOMEM: "out of memory",
    errno.EXDEV: "cannot move across file systems",
}

NETWORK_MODULES = ("httpx", "httpcore", "requests", "urllib3", "huggingface_hub")


def message(exc: LlklError) -> str:
    """The one line shown for ``exc``: a bad value under its flag, else the error's own text."""
    if isinstance(exc, BadValueError):
        return f"{FLAGS.get(exc.param, exc.param)} {exc.value!r}: {exc.problem}"
    return str(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def os_error_message(exc: OSError) -> str:
    """'FILE: disk full' for an OSError: the file when the exception names one, the errno's name."""
    problem = ERRNO_PROBLEMS.get(exc.errno) if exc.errno is not None else None
    if problem is None:
        problem = exc.strerror or _first_line(exc)
        if exc.errno is not None:
            problem = f"{problem} ({errno.errorcode.get(exc.errno, exc.errno)})"
    files = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    return f"{' -> '.join(files)}: {problem}" if files else problem


def _module_of(exc: BaseException) -> str:
    return type(exc).__module__.split(".")[0]


def _is_network(exc: BaseException) -> bool:
    return any(_module_of(e) in NETWORK_MODULES for e in _chain(exc))


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    if _module_of(exc) == "polars":
        text = str(exc).lower()
        return any(w in text for w in ("memory", "alloc", "capacity overflow"))
    return False


def describe(exc: BaseException) -> tuple[str, int] | None:
    """The one line and exit code for an exception a user can cause or meet; None for a bug."""
    if isinstance(exc, LlklError):
        return message(exc), exc.exit_code
    if _is_out_of_memory(exc):
        detail = _first_line(exc)
        return f"out of memory ({detail}): use a smaller --where selection or a machine with more memory", 1
    if _is_network(exc):
        return f"network error: {_first_line(exc)} (offline? check the connection, or HF_HUB_OFFLINE)", 1
    if isinstance(exc, OSError):
        return os_error_message(exc), 1
    if _module_of(exc) == "polars":
        return f"cannot compute: {_first_line(exc)}", 1
    return None


def handle_errors(func: F) -> F:
    """Wrap a command so that failures show as one ``Error:`` line, never as a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.ClickException, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            described = describe(exc)
            if described is None:
                if os.environ.get(DEBUG_ENV):
                    raise
                line = (
                    f"unexpected {type(exc).__name__}: {_first_line(exc)} "
                    f"(a bug; rerun with {DEBUG_ENV}=1 for the traceback)"
                )
                code = BUG_EXIT_CODE
            else:
                line, code = described
            typer.echo(f"Error: {for_plain_terminal(line)}", err=True)
            raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]
