"""One chunk of a text set with its provenance."""

from __future__ import annotations

from typing import NamedTuple


class Chunk(NamedTuple):
    """A text with where it came from: the source (corpus or Pile subset), the document within it,
    the chunk's position in the document, and the source's licence."""

    source: str
    doc_id: str
    chunk_idx: int
    text: str
    license: str | None = None
