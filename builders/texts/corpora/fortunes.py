"""Fortune cookies from Debian's fortunes and fortunes-min."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from .missing import require

PACKAGE = "fortunes"
LICENSE = "BSD and mixed (Debian fortunes, fortunes-min; see their copyright files)"
SKIP = frozenset({"ascii-art"})  # drawings, not text
_SEPARATOR = re.compile(r"^%[ \t]*$", re.MULTILINE)


def fortune_files(folder: Path, skip: frozenset[str] = SKIP) -> list[Path]:
    """The fortune files of ``folder`` in name order: plain files, no ``.dat``/``.u8``, no links."""
    require(folder, f"{PACKAGE} fortunes-min")
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8") and p.name not in skip
    )


def entries(text: str) -> list[str]:
    """The fortunes of one file (split on lines holding ``%``), trailing spaces trimmed."""
    items = ("\n".join(line.rstrip() for line in part.strip("\n").splitlines()) for part in _SEPARATOR.split(text))
    return [item.strip() for item in items if item.strip()]


def read_fortunes(folder: Path) -> Iterator[tuple[str, str]]:
    """Documents (file name, its fortunes joined by blank lines), one per fortune file."""
    for path in fortune_files(folder):
        items = entries(path.read_text(encoding="utf-8", errors="replace"))
        if items:
            yield path.name, "\n\n".join(items)
