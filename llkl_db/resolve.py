"""Resolving a user's model or entry name to one entry of a dataset."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import polars as pl

from llkl_db.errors import UnknownEntryError

FINAL_REVISIONS = ("main", "master", "unknown")  # unknown: the one revision of an imported model


@dataclass(frozen=True)
class Resolved:
    """The entry a name resolved to, its position in the frame, and a note when it was a choice."""

    entry_id: str
    position: int
    note: str | None = None


def resolve(entries: pl.DataFrame, name: str) -> Resolved:
    """Resolve ``name`` (an entry id, ``MODEL@REV`` or a model id) against ``entries``.

    A name with several entries resolves to the model's output (no layer), in its reference
    precision (no variant), at its final revision ('main', else the largest step).
    """
    frame = entries.with_row_index("_pos")
    exact = frame.filter(pl.col("entry_id") == name)
    if exact.height:
        return Resolved(name, int(exact["_pos"][0]))
    model, _, revision = name.partition("@")
    matches = frame.filter(pl.col("model_id") == model)
    if revision:
        matches = matches.filter(pl.col("revision") == revision)
    if matches.height == 0:
        raise UnknownEntryError(_unknown_message(entries, name))
    preferred = matches.filter(pl.col("layer").is_null() & pl.col("variant").is_null())
    if preferred.height == 0:
        preferred = matches
    final = preferred.filter(pl.col("revision").is_in(FINAL_REVISIONS))
    if final.height == 0:
        final = preferred.sort("step", descending=True, nulls_last=True).head(1)
    row = final.row(0, named=True)
    note = None
    if matches.height > 1:
        note = (
            f"'{name}' has {matches.height} entries; using {row['entry_id']} "
            "(output layer, final revision, reference precision)"
        )
    return Resolved(row["entry_id"], int(row["_pos"]), note)


def _unknown_message(entries: pl.DataFrame, name: str) -> str:
    names = entries["model_id"].unique().to_list() + entries["entry_id"].to_list()
    lowered = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.5)
    contains = [n for n in sorted(set(entries["model_id"].to_list())) if name.lower() in n.lower()]
    suggestions = list(dict.fromkeys([lowered[c] for c in close] + contains))[:5]
    hint = f"; closest: {', '.join(suggestions)}" if suggestions else "; `llkl-db models` lists them"
    return f"unknown model or entry '{name}'{hint}"
