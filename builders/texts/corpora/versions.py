"""Versions of the corpora read, for the text set's provenance record."""

from __future__ import annotations

import shutil
import subprocess


def debian_version(package: str) -> str | None:
    """The installed version of a Debian package, or None where dpkg does not know it."""
    if shutil.which("dpkg-query") is None:
        return None
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False)
    return result.stdout.strip() or None if result.returncode == 0 else None
