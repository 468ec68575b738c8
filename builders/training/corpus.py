"""Training text: the offline corpora with every chunk of the mini text set held out.

The mini set draws 600-byte chunks (``chunk_idx``) of documents (``source``, ``doc_id``); the
training text is the rest of each document, so no scored text is ever trained on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from llkl_db.builders.texts.corpora.domains import DOMAINS
from llkl_db.builders.texts.corpora.locations import CorpusPaths
from llkl_db.errors import LlklError
from llkl_db.io.texts import read_texts
from llkl_db.textsets.chunking import split_bytes

CHUNK_BYTES = 600  # the mini set's chunk size: chunk_idx counts pieces of this many bytes


def held_out_chunks(texts_file: Path) -> tuple[set[tuple[str, str, int]], int]:
    """(source, doc_id, chunk_idx) of every text of a text set, and its max chunk size in bytes."""
    df = read_texts(texts_file)
    if df["doc_id"].null_count() or df["chunk_idx"].null_count():
        raise LlklError(f"{texts_file}: texts without doc_id/chunk_idx cannot be held out by position")
    keys = set(zip(df["source"].to_list(), df["doc_id"].to_list(), df["chunk_idx"].to_list(), strict=True))
    return keys, int(df["n_bytes"].max())


def training_documents(
    sources: Sequence[str],
    held_out: set[tuple[str, str, int]],
    chunk_bytes: int = CHUNK_BYTES,
    paths: CorpusPaths | None = None,
) -> Iterable[tuple[str, str]]:
    """(source, text) per document of ``sources``, with the held-out chunks cut out (the pieces
    around a held-out chunk are yielded as separate documents, never joined across it)."""
    paths = paths or CorpusPaths()
    unknown = [s for s in sources if s not in DOMAINS]
    if unknown:
        raise LlklError(f"unknown corpus {', '.join(unknown)}; known: {', '.join(DOMAINS)}")
    for source in sources:
        for doc_id, text in DOMAINS[source].read(paths):
            kept: list[str] = []
            for idx, piece in enumerate(split_bytes(text, chunk_bytes)):
                if (source, doc_id, idx) in held_out:
                    if kept:
                        yield source, "".join(kept)
                    kept = []
                else:
                    kept.append(piece)
            if kept:
                yield source, "".join(kept)
