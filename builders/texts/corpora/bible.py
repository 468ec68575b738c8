"""The World English Bible from the SWORD module of Debian's sword-text-web (zText format)."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from .missing import require
from .text import squash

PACKAGE = "sword-text-web"
LICENSE = "public domain (World English Bible)"
_NOTE = re.compile(r"<note\b[^>]*>.*?</note>", re.DOTALL)
_TITLE = re.compile(r"<title\b[^>]*>.*?</title>", re.DOTALL)
_SPACE_BEFORE_PUNCT = re.compile(r" +([,.;:!?\u201d\u2019)\]])")
_TAG = re.compile(r"<[^>]*>|<[^>]*$")  # a whole tag, or one cut off at the end of an entry
_BOOK = re.compile(r'osisID="([^".]+)')
_GLOSSARY = re.compile(r'<div[^>]*type="glossary"')


def _records(data: bytes, fmt: str) -> list[tuple[int, ...]]:
    """Fixed-size little-endian records of an index file."""
    size = struct.calcsize(fmt)
    return [struct.unpack_from(fmt, data, i) for i in range(0, len(data) - size + 1, size)]


def raw_entries(folder: Path, testament: str) -> Iterator[str]:
    """The OSIS text of each index entry of one testament (``ot`` or ``nt``), in order.

    ``.bzs`` holds (offset, size, uncompressed size) per zlib block, ``.bzv`` holds
    (block, offset, size) per entry; entries are verses and book/chapter headings."""
    blocks = _records((folder / f"{testament}.bzs").read_bytes(), "<III")
    entries = _records((folder / f"{testament}.bzv").read_bytes(), "<IIH")
    packed = (folder / f"{testament}.bzz").read_bytes()
    cache: dict[int, bytes] = {}
    for block, offset, size in entries:
        if size == 0:
            continue
        if block not in cache:
            start, length, _ = blocks[block]
            cache.clear()
            cache[block] = zlib.decompress(packed[start : start + length])
        yield cache[block][offset : offset + size].decode("utf-8")


def verse_text(osis: str) -> str:
    """Plain text of an entry: footnotes and titles dropped, tags stripped, whitespace squashed.

    A footnote may stand in for the space between two words, so it becomes a space; a space
    left before punctuation is removed."""
    text = _TAG.sub("", _TITLE.sub("", _NOTE.sub(" ", osis)))
    return _SPACE_BEFORE_PUNCT.sub(r"\1", squash(text))


def read_bible(folder: Path) -> Iterator[tuple[str, str]]:
    """Documents (OSIS book id, its verses joined by spaces), Old then New Testament.

    The preface (the entry marked ``type="front"``) and the glossary appended to the last verse
    are left out."""
    require(folder / "ot.bzz", PACKAGE)
    book, verses = None, []
    for testament in ("ot", "nt"):
        for osis in raw_entries(folder, testament):
            if 'type="front"' in osis:
                continue
            osis = _GLOSSARY.split(osis, maxsplit=1)[0]
            found = _BOOK.search(osis) if 'type="book"' in osis or "<chapter" in osis else None
            if found and found.group(1) != book:
                if book and verses:
                    yield book, " ".join(verses)
                book, verses = found.group(1), []
            text = verse_text(osis)
            if text:
                verses.append(text)
    if book and verses:
        yield book, " ".join(verses)
