"""One-line errors for a corpus that is not on disk, telling how to get it."""

from __future__ import annotations

from pathlib import Path

from llkl_db.errors import LlklError


class MissingCorpusError(LlklError):
    """A corpus of the mini text set is not where it was looked for."""


def require(path: Path, package: str) -> Path:
    """Return ``path`` if it exists, else raise a one-line error naming the Debian package."""
    if not path.exists():
        raise MissingCorpusError(
            f"{path}: not found; install the Debian package with `apt-get install -y {package}` "
            "(or run builders/texts/install_corpora.sh)"
        )
    return path
