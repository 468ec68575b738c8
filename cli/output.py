"""Printing results: rich tables for people, JSON for machines, notes on stderr."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import typer

from llkl_db.escape import for_plain_terminal, for_terminal

ID_COLUMNS = ("entry_id", "model_id")
PIPE_WIDTH = 240


def note(message: str) -> None:
    """A remark for the user that is not part of the result (stderr); control characters visible."""
    typer.echo(for_plain_terminal(message), err=True)


def echo(message: str, err: bool = False) -> None:
    """A plain line of the result (stdout): ids in it may carry control characters, shown visibly."""
    typer.echo(for_plain_terminal(message), err=err)


def print_json(payload: Any) -> None:
    """Strict JSON: a NaN or infinite number (e.g. the KL of a constant vector's SE) is null."""
    typer.echo(json.dumps(_finite(payload), indent=2, default=_jsonable, allow_nan=False))


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float (also numpy scalars) replaced by None."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "isoformat") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return _finite(value.item())
    if hasattr(value, "tolist"):
        return _finite(value.tolist())
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def plus_minus(value: float | None, se: float | None) -> str:
    """An estimate with its standard error, as people read them: '0.4213 ± 0.012'."""
    if value is None:
        return ""
    return f"{value:.4g} ± {se:.2g}" if se is not None else f"{value:.4g}"


def kl_rows(table) -> list[dict]:
    """The rows of a neighbours table (nearest, place) with their KLs as 'value ± SE' cells:
    'KL bits/byte', and 'KL nats/text' where the table has nats."""
    rows = table.to_dicts()
    for row in rows:
        row["KL bits/byte"] = plus_minus(row["kl_bpb"], row["se_bpb"])
        if "kl_nats" in row:
            row["KL nats/text"] = plus_minus(row["kl_nats"], row["se_nats"])
    return rows


def print_table(rows: list[dict], columns: list[str], title: str | None = None, caption: str | None = None) -> None:
    """A rich table of ``rows`` restricted to ``columns``. Every cell, header, title and caption is
    escaped for rich (markup shows literally, control characters visibly): ids are untrusted."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=None if title is None else for_terminal(title),
        caption=None if caption is None else for_terminal(caption),
        caption_justify="left",
    )
    for column in columns:
        values = [row.get(column) for row in rows if row.get(column) is not None]
        numeric = bool(values) and isinstance(values[0], (int, float))
        # Ids are what a user copies into the next command: never cut them short with an ellipsis.
        width = max((len(for_plain_terminal(format_value(row.get(column)))) for row in rows), default=0)
        table.add_column(
            for_terminal(column),
            justify="right" if numeric else "left",
            overflow="fold",
            min_width=min(width, 60) if column in ID_COLUMNS else None,
        )
    for row in rows:
        table.add_row(*(for_terminal(format_value(row.get(c))) for c in columns))
    # On a terminal rich fits the table to its width; piped output keeps every row on one line.
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else PIPE_WIDTH).print(table)
