"""Where a dataset comes from: the embedded one, a local folder, or a Hub repository."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from llkl_db.errors import LlklError

from . import swap

HF_PREFIX = "hf://datasets/"


def embedded_dataset_path() -> Path:
    """The dataset folder shipped inside the package."""
    return Path(str(resources.files("llkl_db").joinpath("data", "embedded")))


def parse_hub_source(source: str, revision: str | None = None) -> tuple[str, str | None]:
    """Split ``hf://datasets/ORG/NAME[@REV]`` or ``ORG/NAME`` into a repo id and a revision."""
    spec = source[len(HF_PREFIX) :] if source.startswith(HF_PREFIX) else source
    if "@" in spec:
        spec, at_revision = spec.split("@", 1)
        if revision and revision != at_revision:
            raise LlklError(f"{source}: revision given twice ({at_revision!r} and {revision!r})")
        revision = at_revision
    parts = spec.strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise LlklError(f"{source}: expected a local folder, hf://datasets/ORG/NAME[@REV] or ORG/NAME")
    return "/".join(parts), revision or None


def resolve_source(source: str | os.PathLike | None, revision: str | None = None) -> Path:
    """Return a local folder for ``source``, downloading from the Hub when it names a repository."""
    if source is None:
        path = embedded_dataset_path()
        if not path.is_dir():
            raise LlklError(f"{path}: this install has no embedded dataset; name a dataset")
        return path
    text = os.fspath(source)
    if text.startswith(HF_PREFIX):
        from .hub import download_dataset

        return download_dataset(*parse_hub_source(text, revision))
    path = Path(text).expanduser()
    if not path.exists() and swap.journal_path(path.absolute()).is_file():
        swap.recover(path.absolute())  # a writer was killed between its two renames
    if path.exists():
        if not path.is_dir():
            raise LlklError(f"{path}: a dataset is a folder, not a file")
        return path
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        from .hub import download_dataset

        return download_dataset(*parse_hub_source(text, revision))
    raise LlklError(f"{path}: no such dataset folder")
