"""Import of the 2025 paper's published ``texts-10k-pile.jsonl`` (shimo-lab/modelmap, 1000models).

Each line is one JSON object with ``index`` (the text's position, 0..9999; their loader orders
texts by it), ``text`` and ``pile_set_name``, and the indexing metadata of the chunking step,
``pile_idx`` and ``chunk_idx`` (kept here when present)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from llkl_db.errors import LlklError
from llkl_db.io.texts import check_text_set_target

from .chunk import Chunk
from .output import write_chunks

REQUIRED = {"index": int, "text": str, "pile_set_name": str}
OPTIONAL = {"pile_idx": int, "chunk_idx": int}


def _field(item: dict, name: str, kind: type, where: str, required: bool):
    if name not in item or item[name] is None:
        if required:
            raise LlklError(f"{where}: missing field {name!r}")
        return None
    value = item[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LlklError(f"{where}: field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def parse_line(line: str, where: str) -> tuple[int, Chunk]:
    """(index, chunk) of one line; ``where`` ("FILE:LINE") starts any error message."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LlklError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(item, dict):
        raise LlklError(f"{where}: expected a JSON object")
    index, text, pile_set = (_field(item, n, k, where, True) for n, k in REQUIRED.items())
    pile_idx, chunk_idx = (_field(item, n, k, where, False) for n, k in OPTIONAL.items())
    doc_id = None if pile_idx is None else str(pile_idx)
    return index, Chunk(pile_set, doc_id, chunk_idx, text)


def read_modelmap(path: Path) -> list[Chunk]:
    """The chunks of a texts-10k-pile.jsonl file in ``index`` order, which must run 0..N-1."""
    by_index: dict[int, Chunk] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                index, chunk = parse_line(line, where)
                if index in by_index:
                    raise LlklError(f"{where}: index {index} appears twice")
                by_index[index] = chunk
    except (OSError, UnicodeDecodeError) as exc:
        raise LlklError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    if not by_index:
        raise LlklError(f"{path}: no texts")
    if sorted(by_index) != list(range(len(by_index))):
        raise LlklError(f"{path}: 'index' must run 0..{len(by_index) - 1} without gaps")
    return [by_index[i] for i in range(len(by_index))]


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def import_modelmap(path: Path, out: Path, name: str = "pile-10k", overwrite: bool = False) -> dict[str, Any]:
    """Write the published text set at ``path`` as the text set ``name`` at ``out`` (an existing
    ``out`` that is not a text set needs ``overwrite``)."""
    check_text_set_target(out, overwrite)
    chunks = read_modelmap(Path(path))
    recipe = {
        "builder": "llkl_db.textsets.modelmap",
        "imported": Path(path).name,
        "file_sha256": file_sha256(path),
    }
    return write_chunks(out, name, chunks, {"recipe": recipe})
