"""Plans that ship with llkl-db: the 1,018 models of arXiv 2502.16173, Pythia checkpoints and
PolyPythia seeds (arXiv 2505.15353), and the embedded dataset."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_plans() -> dict[str, Path]:
    """Names and files of the shipped plans."""
    folder = Path(str(resources.files(__package__)))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}
