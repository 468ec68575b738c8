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


def split_name(entries: pl.DataFrame, name: str) -> tuple[str, str | None]:
    """``MODEL@REV`` -> (MODEL, REV) when REV is a revision of MODEL in ``entries``; else the whole
    name is a model id (model ids may contain '@'). The split is at the last '@'."""
    model, sep, revision = name.rpartition("@")
    if sep and model:
        known = entries.filter((pl.col("model_id") == model) & (pl.col("revision") == revision))
        if known.height:
            return model, revision
    return name, None


def resolve(entries: pl.DataFrame, name: str) -> Resolved:
    """Resolve ``name`` (an entry id, ``MODEL@REV`` or a model id) against ``entries``.

    A name with several entries resolves, in this order of preference, to the model's output
    (no layer), else its deepest logit-lens layer (the closest to the output); in its reference
    precision (no variant), else the first variant by name; at its final revision ('main' or
    'master', else the largest step). The note says what was chosen and why.
    """
    frame = entries.with_row_index("_pos")
    exact = frame.filter(pl.col("entry_id") == name)
    if exact.height:
        return Resolved(name, int(exact["_pos"][0]))
    model, revision = split_name(entries, name)
    matches = frame.filter(pl.col("model_id") == model)
    if revision is not None:
        matches = matches.filter(pl.col("revision") == revision)
    if matches.height == 0:
        raise UnknownEntryError(_unknown_message(entries, name))
    reasons = []
    # 1. the output layer (layer null), else the deepest layer
    outputs = matches.filter(pl.col("layer").is_null())
    if outputs.height:
        chosen = outputs
        layer_reason = "output layer"
    else:
        deepest = matches["layer"].max()
        chosen = matches.filter(pl.col("layer") == deepest)
        layer_reason = f"no output entry; using layer {deepest}, the deepest"
    reasons.append(layer_reason)
    # 2. the reference precision (variant null), else the first variant by name
    reference = chosen.filter(pl.col("variant").is_null())
    if reference.height:
        chosen = reference
        variant_reason = "reference precision"
    else:
        first = chosen["variant"].drop_nulls().sort()[0]
        chosen = chosen.filter(pl.col("variant") == first)
        variant_reason = f"no reference-precision entry; using variant {first}"
    # 3. the final revision, else the largest step
    final = chosen.filter(pl.col("revision").is_in(FINAL_REVISIONS))
    if final.height:
        revision_reason = "final revision"
    else:
        final = chosen.sort("step", descending=True, nulls_last=True).head(1)
        revision_reason = f"no final revision; using {final['revision'][0]}, the latest step"
    row = final.row(0, named=True)
    note = None
    if matches.height > 1 or layer_reason != "output layer" or variant_reason != "reference precision":
        what = f"'{name}' has {matches.height} entries" if matches.height > 1 else f"'{name}' has 1 entry"
        note = f"{what}; using {row['entry_id']} ({layer_reason}, {variant_reason}, {revision_reason})"
    return Resolved(row["entry_id"], int(row["_pos"]), note)


def _unknown_message(entries: pl.DataFrame, name: str) -> str:
    names = entries["model_id"].unique().to_list() + entries["entry_id"].to_list()
    lowered = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.5)
    contains = [n for n in sorted(set(entries["model_id"].to_list())) if name.lower() in n.lower()]
    suggestions = list(dict.fromkeys([lowered[c] for c in close] + contains))[:5]
    hint = f"; closest: {', '.join(suggestions)}" if suggestions else "; `llkl-db models` lists them"
    return f"unknown model or entry '{name}'{hint}"
