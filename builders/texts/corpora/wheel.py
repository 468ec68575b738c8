"""Provenance of a file read from inside a wheel."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path


def wheel_version(wheel: Path) -> str | None:
    """The ``Version:`` of a wheel's METADATA, or None if it has none."""
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.endswith(".dist-info/METADATA"):
                for line in zf.read(name).decode("utf-8", "replace").splitlines():
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip()
    return None


def member_sha256(wheel: Path, member: str) -> str:
    """sha256 of one file inside a wheel (the same in every platform's wheel)."""
    h = hashlib.sha256()
    with zipfile.ZipFile(wheel) as zf, zf.open(member) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
