"""Write a selection of chunks as a text set: Parquet plus a JSON provenance sidecar."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llkl_db.io.atomic import write_text_atomic
from llkl_db.io.texts import write_texts

from .chunk import Chunk


def sidecar_path(path: Path) -> Path:
    """Where the provenance of the text set at ``path`` is written: same name, ``.json``."""
    return Path(path).with_suffix(".json")


def summary(chunks: Sequence[Chunk]) -> dict[str, Any]:
    """N, mean UTF-8 bytes and texts per source of a selection."""
    sizes = [len(c.text.encode("utf-8")) for c in chunks]
    per_source: dict[str, int] = {}
    for c in chunks:
        per_source[c.source] = per_source.get(c.source, 0) + 1
    return {
        "n_texts": len(chunks),
        "mean_bytes": sum(sizes) / len(sizes) if sizes else 0.0,
        "per_source": dict(sorted(per_source.items())),
    }


def write_chunks(path: Path, name: str, chunks: Sequence[Chunk], provenance: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``chunks`` in order as the text set ``name`` at ``path`` and its sidecar; return the
    sidecar record (name, sha256, N, mean bytes, per-source counts and ``provenance``).

    Both files are written atomically: the Parquet file first, then the sidecar."""
    sha = write_texts(
        Path(path),
        [c.text for c in chunks],
        [c.source for c in chunks],
        doc_id=[c.doc_id for c in chunks],
        chunk_idx=[c.chunk_idx for c in chunks],
        license=[c.license for c in chunks],
    )
    record = {"name": name, "sha256": sha, **summary(chunks), **provenance}
    write_text_atomic(sidecar_path(Path(path)), json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return record
