"""One place for error handling: a :class:`LlklError` becomes one line on stderr and its exit code.

A :class:`BadValueError` names the library parameter; here it is shown under the command-line
flag that sets it (``FLAGS``), else under the parameter's name."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import typer

from llkl_db.errors import BadValueError, LlklError
from llkl_db.escape import for_plain_terminal

F = TypeVar("F", bound=Callable)

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
}


def message(exc: LlklError) -> str:
    """The one line shown for ``exc``: a bad value under its flag, else the error's own text."""
    if isinstance(exc, BadValueError):
        return f"{FLAGS.get(exc.param, exc.param)} {exc.value!r}: {exc.problem}"
    return str(exc)


def handle_errors(func: F) -> F:
    """Wrap a command so that user-facing errors never show a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LlklError as exc:
            typer.echo(f"Error: {for_plain_terminal(message(exc))}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]
