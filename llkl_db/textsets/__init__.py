"""Text sets in memory: a name, the texts in id order, and the sha256 that identifies them.

The shipped text sets live in the package (``llkl_db/data/texts``); any text-set Parquet file
loads the same way. Chunking and the readers of published text files are torch-free and live
beside this module, so that the query side can import them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from llkl_db.errors import LlklError
from llkl_db.io.texts import TextSetKey, read_texts, text_set_sha256

__all__ = ["TextSet", "TextSetKey", "load_text_set", "shipped_text_sets"]


def shipped_text_sets() -> dict[str, Path]:
    """Names and files of the text sets shipped in the package."""
    folder = Path(str(resources.files("llkl_db").joinpath("data", "texts")))
    return {p.stem: p for p in sorted(folder.glob("*.parquet"))} if folder.is_dir() else {}


@dataclass(frozen=True)
class TextSet:
    """A text set in memory: its name, hash, texts, and its file."""

    name: str
    sha256: str
    texts: list[str]
    path: Path

    @property
    def key(self) -> TextSetKey:
        """The identity of the set (name and sha256), as every entry records it."""
        return TextSetKey(self.name, self.sha256)

    @cached_property
    def n_bytes(self) -> np.ndarray:
        """UTF-8 length of each text (int64)."""
        return np.array([len(t.encode("utf-8")) for t in self.texts], dtype=np.int64)

    @property
    def mean_bytes(self) -> float:
        """B, the mean UTF-8 length of the texts: bits per byte divide by it."""
        return float(self.n_bytes.mean())

    def __len__(self) -> int:
        return len(self.texts)


def read_text_set(path: Path, n_texts: int | None = None) -> TextSet:
    """Read a text-set Parquet file, named after its file, and hash its texts once (with
    ``n_texts``, refusing a file of another length before reading it)."""
    return text_set_of(read_texts(path, n_texts), path)


def text_set_of(frame, path: Path) -> TextSet:
    """The TextSet of a text-set frame already read from ``path`` (:func:`read_texts`)."""
    texts = frame["text"].to_list()
    return TextSet(name=Path(path).stem, sha256=text_set_sha256(texts), texts=texts, path=Path(path))


def load_text_set(spec: str | Path) -> TextSet:
    """Load a shipped text set by name (``mini``) or any text-set Parquet file by path."""
    shipped = shipped_text_sets()
    path = shipped.get(str(spec)) or Path(spec)
    if not path.is_file():
        names = ", ".join(shipped) or "none"
        raise LlklError(f"{spec}: no such text set file (shipped text sets: {names})")
    return read_text_set(path)
