"""Text sets: one Parquet file per set, identified by name and a sha256 over its texts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llkl_db.errors import LlklError
from llkl_db.schema import arrow_schema, field_names

from .atomic import atomic_path


@dataclass(frozen=True)
class TextSetKey:
    """The identity of a text set: its name and the sha256 of its texts."""

    name: str
    sha256: str

    def short(self) -> str:
        """'NAME (sha256 0123456789ab)', for messages."""
        return f"{self.name} (sha256 {self.sha256[:12]})"


def text_set_sha256(texts: Iterable[str]) -> str:
    """sha256 over the texts in id order, each as its UTF-8 byte length (8 bytes, little endian)
    followed by its bytes, so that no two different sets share a hash."""
    h = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def check_text_set_target(path: Path, overwrite: bool = False) -> None:
    """Refuse to replace a file that is not a text set (nor its provenance sidecar) unless
    ``overwrite``: a writer never deletes what it did not write."""
    path = Path(path)
    sidecar = path.with_suffix(".json")
    for target in (path, sidecar):
        if target.exists() and not target.is_file():
            raise LlklError(f"{target}: exists and is not a regular file")
    if overwrite or not path.exists():
        if not overwrite and sidecar.exists():
            raise LlklError(f"{sidecar}: exists beside no text set; remove it or overwrite explicitly")
        return
    try:
        read_texts(path)
    except LlklError:
        raise LlklError(
            f"{path}: exists and is not a text set; choose another file, or overwrite it explicitly"
        ) from None


def write_texts(path: Path, texts: Sequence[str], sources: Sequence[str], **provenance: Sequence) -> str:
    """Write a text set atomically and return its sha256. ``provenance`` holds optional columns
    of the schema (doc_id, chunk_idx, license), each one value per text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not texts:
        raise LlklError(f"{path}: a text set needs at least one text")
    columns = {
        "text_id": list(range(len(texts))),
        "text": list(texts),
        "n_bytes": [len(t.encode("utf-8")) for t in texts],
        "source": list(sources),
    }
    unknown = set(provenance) - set(field_names("texts"))
    if unknown:
        raise ValueError(f"unknown text columns: {sorted(unknown)}")
    for name in field_names("texts"):
        if name not in columns:
            columns[name] = list(provenance.get(name, [None] * len(texts)))
    table = pa.table(columns, schema=arrow_schema("texts"))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return text_set_sha256(texts)


# A text set holds at most this many texts, decompressing to at most MAX_TEXT_SET_BYTES.
MAX_TEXTS = 1_000_000
MAX_TEXT_SET_BYTES = 1 << 30


def read_texts(path: Path, n_texts: int | None = None):
    """Read a text set as a Polars DataFrame, checking ids run 0..N-1. With ``n_texts`` the
    footer must claim exactly that many rows; the footer is checked before any text is read."""
    from .parquet import read_frame

    df = read_frame(path, rows=n_texts, max_rows=MAX_TEXTS, max_bytes=MAX_TEXT_SET_BYTES, what="Parquet text set")
    missing = [c for c in ("text_id", "text", "n_bytes", "source") if c not in df.columns]
    if missing:
        raise LlklError(f"{path}: missing column(s) {', '.join(missing)}")
    df = df.sort("text_id")
    if df["text_id"].to_list() != list(range(df.height)):
        raise LlklError(f"{path}: text_id must run 0..N-1 without gaps")
    return df
