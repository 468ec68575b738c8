"""Small text helpers shared by the corpus readers."""

from __future__ import annotations

import re

_SPACE = re.compile(r"\s+")


def squash(text: str) -> str:
    """Collapse runs of whitespace (line wraps included) into single spaces."""
    return _SPACE.sub(" ", text).strip()


def n_words(text: str) -> int:
    """Number of whitespace-separated words."""
    return len(text.split())
