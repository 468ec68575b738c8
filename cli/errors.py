"""One place for error handling: a :class:`LlklError` becomes one line on stderr and its exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import typer

from llkl_db.errors import LlklError
from llkl_db.escape import for_plain_terminal

F = TypeVar("F", bound=Callable)


def handle_errors(func: F) -> F:
    """Wrap a command so that user-facing errors never show a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LlklError as exc:
            typer.echo(f"Error: {for_plain_terminal(exc)}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]
