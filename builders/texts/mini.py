"""The mini text set: an offline, multi-domain set from packaged corpora."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llkl_db.errors import LlklError
from llkl_db.io.texts import check_text_set_target
from llkl_db.textsets.chunk import Chunk
from llkl_db.textsets.chunking import chunk_document
from llkl_db.textsets.output import write_chunks

from .corpora.domains import DOMAINS, Domain
from .corpora.locations import CorpusPaths
from .selection import sample_per_source, split_evenly

NAME = "mini"


@dataclass(frozen=True)
class MiniParams:
    """How the mini set is drawn. ``per_source`` overrides the even split of ``n`` over ``sources``."""

    n: int = 160
    sources: tuple[str, ...] = ("wikipedia", "bible", "jargon", "fortunes")
    per_source: Mapping[str, int] | None = None
    min_bytes: int = 200
    max_bytes: int = 600
    seed: int = 42
    paths: CorpusPaths = field(default_factory=CorpusPaths)

    def counts(self) -> dict[str, int]:
        """Texts to draw from each source."""
        if self.per_source is not None:
            return dict(self.per_source)
        return split_evenly(self.n, self.sources)


def domain_chunks(domain: Domain, paths: CorpusPaths, min_bytes: int, max_bytes: int) -> list[Chunk]:
    """All chunks of one corpus, documents in reading order, chunks in document order."""
    return [
        Chunk(domain.source, doc_id, idx, piece, domain.license)
        for doc_id, text in domain.read(paths)
        for idx, piece in chunk_document(text, max_bytes, min_bytes)
    ]


def _domains(names: Sequence[str]) -> list[Domain]:
    unknown = [n for n in names if n not in DOMAINS]
    if unknown:
        raise LlklError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(DOMAINS)}")
    return [DOMAINS[n] for n in names]


def select_mini(params: MiniParams) -> tuple[list[Chunk], dict[str, Any]]:
    """The chosen chunks, in text-set order, and the corpora's provenance records."""
    counts = params.counts()
    domains = _domains(list(counts))
    pools = {d.source: domain_chunks(d, params.paths, params.min_bytes, params.max_bytes) for d in domains}
    chosen = sample_per_source(pools, counts, params.seed)
    corpora = {
        d.source: {"license": d.license, "chunks_available": len(pools[d.source]), **d.provenance(params.paths)}
        for d in domains
    }
    return chosen, corpora


def build_mini(
    out: Path, params: MiniParams = MiniParams(), name: str = NAME, overwrite: bool = False
) -> dict[str, Any]:
    """Build the mini text set at ``out`` (Parquet) with its sidecar ``out.with_suffix('.json')``;
    return the sidecar record. An existing ``out`` that is not a text set needs ``overwrite``."""
    check_text_set_target(out, overwrite)
    chosen, corpora = select_mini(params)
    recipe = {
        "builder": "llkl_db.builders.texts.mini",
        "seed": params.seed,
        "min_bytes": params.min_bytes,
        "max_bytes": params.max_bytes,
        "counts": params.counts(),
        "chunking": "UTF-8 pieces of at most max_bytes (backing up to a character boundary), "
        "kept if longer than min_bytes",
    }
    return write_chunks(out, name, chosen, {"recipe": recipe, "corpora": corpora})
