"""The Jargon File from Debian's jargon-text."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

from .missing import require
from .text import n_words, squash

PACKAGE = "jargon-text"
LICENSE = "public domain (Jargon File)"
MIN_WORDS = 40
_BOX_DRAWING = re.compile("[\u2500-\u257f]")  # the File's tables


def read_jargon(path: Path, min_words: int = MIN_WORDS) -> Iterator[tuple[str, str]]:
    """One running document: the File's paragraphs (split on blank lines, line wraps undone) of
    ``min_words`` or more words, tables left out, joined by blank lines."""
    require(path, PACKAGE)
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        raw = f.read()
    paras = (squash(p) for p in raw.replace("\r\n", "\n").split("\n\n"))
    kept = [p for p in paras if n_words(p) >= min_words and not _BOX_DRAWING.search(p)]
    if kept:
        yield path.name, "\n\n".join(kept)
