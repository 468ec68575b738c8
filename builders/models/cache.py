"""Where converted models are cached: $LLKL_DB_CACHE or ~/.cache/llkl-db, under models/."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PREFIX_BYTES = 16 * 1024 * 1024


def cache_root() -> Path:
    """Return the llkl-db cache folder ($LLKL_DB_CACHE, else ~/.cache/llkl-db)."""
    env = os.environ.get("LLKL_DB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "llkl-db"


def models_cache() -> Path:
    """Return the folder that holds converted models."""
    return cache_root() / "models"


def file_key(path: Path, prefix_bytes: int = PREFIX_BYTES) -> str:
    """Return a cache key for a large file: sha256 of its size and its first bytes (cheap, stable)."""
    digest = hashlib.sha256(str(path.stat().st_size).encode() + b"\0")
    with path.open("rb") as fh:
        digest.update(fh.read(prefix_bytes))
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Return the full sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()
