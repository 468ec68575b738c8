"""Where the offline corpora lie on disk: clear defaults, each overridable."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

GENSIM_VERSION = "4.4.0"
CACHE_ENV = "LLKL_DB_CORPORA"


def default_cache_dir() -> Path:
    """Folder for downloaded corpora (the gensim wheel): ``$LLKL_DB_CORPORA``, else
    ``$XDG_CACHE_HOME/llkl-db/corpora``, else ``~/.cache/llkl-db/corpora``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llkl-db" / "corpora"


@dataclass(frozen=True)
class CorpusPaths:
    """Locations of the four corpora of the mini text set."""

    wheel_dir: Path = field(default_factory=default_cache_dir)
    bible_dir: Path = Path("/usr/share/sword/modules/texts/ztext/engWEB2015eb")
    jargon_file: Path = Path("/usr/share/doc/jargon-text/jargon.txt.gz")
    fortunes_dir: Path = Path("/usr/share/games/fortunes")
