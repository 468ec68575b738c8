"""Reading a JSON file that llkl-db or a contributor wrote: strict (NaN and Infinity refused),
and every failure one line naming the file."""

from __future__ import annotations

import json
from pathlib import Path

from llkl_db.errors import LlklError


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def read_json(path: Path) -> object:
    """The parsed content of ``path``; unreadable or invalid JSON is a :class:`LlklError`."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LlklError(f"{path}: cannot read ({type(exc).__name__})") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise LlklError(f"{path}: not valid JSON ({str(exc).splitlines()[0][:200]})") from None
