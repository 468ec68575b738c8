"""Text sets by name or path: the shipped ones live in the package (``llkl_db/data/texts``)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from llkl_db.errors import LlklError
from llkl_db.io.texts import read_texts, text_set_sha256


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
    def mean_bytes(self) -> float:
        return sum(len(t.encode("utf-8")) for t in self.texts) / len(self.texts)


def load_text_set(spec: str | Path) -> TextSet:
    """Load a shipped text set by name (``mini``) or any text-set Parquet file by path."""
    shipped = shipped_text_sets()
    path = shipped.get(str(spec)) or Path(spec)
    if not path.is_file():
        names = ", ".join(shipped) or "none"
        raise LlklError(f"{spec}: no such text set file (shipped text sets: {names})")
    texts = read_texts(path)["text"].to_list()
    return TextSet(name=path.stem, sha256=text_set_sha256(texts), texts=texts, path=path)
