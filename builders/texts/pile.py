"""The papers' reference text set: 10,000 chunks of the first 1,000,000 Pile documents.

The procedure takes any source of documents (mappings with ``text`` and ``meta.pile_set_name``,
as in the Pile's JSON lines). It reads the documents twice, so that memory holds the positions of
the ~5.7 million chunks rather than their text: the first pass counts the chunks, the seeded draw
picks positions, the second pass collects the picked texts. The draw is the papers' own
(``random.seed(42); random.sample(chunks, 40_000)[:10_000]``), so the result is the same set in
the same order."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from llkl_db.errors import LlklError
from llkl_db.io.texts import check_text_set_target
from llkl_db.textsets.chunk import Chunk
from llkl_db.textsets.chunking import PILE_MAX_BYTES, PILE_MIN_BYTES, chunk_document
from llkl_db.textsets.output import write_chunks

from .selection import pile_sample

NAME = "pile-10k"
Documents = Callable[[], Iterable[Mapping[str, Any]]]


@dataclass(frozen=True)
class PileParams:
    """The recipe's numbers (method.md, section 1); smaller values make test-sized sets."""

    n_docs: int = 1_000_000
    n_sample: int = 40_000
    n_keep: int = 10_000
    seed: int = 42
    max_bytes: int = PILE_MAX_BYTES
    min_bytes: int = PILE_MIN_BYTES


def _text_and_set(doc: Mapping[str, Any], pile_idx: int) -> tuple[str, str]:
    try:
        return doc["text"], doc["meta"]["pile_set_name"]
    except (KeyError, TypeError):
        raise LlklError(f"Pile document {pile_idx}: needs 'text' and 'meta.pile_set_name'") from None


def chunk_positions(documents: Iterable[Mapping[str, Any]], params: PileParams) -> tuple[array, array]:
    """(pile_idx, chunk_idx) of every kept chunk of the first ``n_docs`` documents, in order."""
    pile_ids, chunk_ids = array("q"), array("q")
    for pile_idx, doc in enumerate(islice(documents, params.n_docs)):
        text, _ = _text_and_set(doc, pile_idx)
        for chunk_idx, _piece in chunk_document(text, params.max_bytes, params.min_bytes):
            pile_ids.append(pile_idx)
            chunk_ids.append(chunk_idx)
    return pile_ids, chunk_ids


def collect(documents: Iterable[Mapping[str, Any]], wanted: set[tuple[int, int]], params: PileParams) -> dict:
    """The chunks at the ``wanted`` (pile_idx, chunk_idx) positions, keyed by position."""
    found: dict[tuple[int, int], Chunk] = {}
    last = max(p for p, _ in wanted)
    docs_wanted = {p for p, _ in wanted}
    for pile_idx, doc in enumerate(islice(documents, last + 1)):
        if pile_idx not in docs_wanted:
            continue
        text, pile_set = _text_and_set(doc, pile_idx)
        for chunk_idx, piece in chunk_document(text, params.max_bytes, params.min_bytes):
            if (pile_idx, chunk_idx) in wanted:
                found[pile_idx, chunk_idx] = Chunk(pile_set, str(pile_idx), chunk_idx, piece)
    return found


def select_pile(documents: Documents, params: PileParams = PileParams()) -> list[Chunk]:
    """The reference chunks in the papers' order; ``documents()`` must give the same documents
    each time it is called."""
    pile_ids, chunk_ids = chunk_positions(documents(), params)
    picks = pile_sample(range(len(pile_ids)), params.seed, params.n_sample, params.n_keep)
    positions = [(pile_ids[i], chunk_ids[i]) for i in picks]
    found = collect(documents(), set(positions), params)
    if len(found) != len(set(positions)):
        raise LlklError("the documents changed between the two passes over the Pile")
    return [found[p] for p in positions]


def build_pile(
    out: Path,
    documents: Documents,
    params: PileParams = PileParams(),
    provenance_of: Callable[[], Mapping[str, Any]] | None = None,
    name: str = NAME,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build the Pile text set at ``out`` with its sidecar; return the sidecar record.

    ``provenance_of()``, called after the documents were read, says what was read. An existing
    ``out`` that is not a text set needs ``overwrite``."""
    check_text_set_target(out, overwrite)
    chosen = select_pile(documents, params)
    recipe = {"builder": "llkl_db.builders.texts.pile", **asdict(params)}
    corpora = dict(provenance_of()) if provenance_of else {}
    return write_chunks(out, name, chosen, {"recipe": recipe, "corpora": corpora})
