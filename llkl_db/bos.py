"""The first-token policy of vectors scored by the 2025 code, by model type (``schema/bos_by_model_type.json``).

That code encodes each text with the tokenizer's default special tokens and drops the first
position's score: a tokenizer that prepends BOS gives the 'bos' policy, one that prepends
nothing gives 'skip-first'.

    >>> bos_policy_for("llama-2").policy
    'bos'
    >>> bos_policy_for("others").known
    False
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

TABLE_FILE = "bos_by_model_type.json"


@dataclass(frozen=True)
class BosDecision:
    """The policy of one model type, how it was decided, and whether the type is in the table."""

    model_type: str | None
    policy: str
    how: str
    known: bool


@cache
def bos_table() -> dict[str, Any]:
    """The parsed ``schema/bos_by_model_type.json``."""
    return json.loads(resources.files("llkl_db.schema").joinpath(TABLE_FILE).read_text("utf-8"))


def bos_policy_for(model_type: str | None) -> BosDecision:
    """The policy of ``model_type`` (case-insensitive); unknown types get the table's default."""
    table = bos_table()
    key = model_type.lower() if isinstance(model_type, str) else None
    found = table["types"].get(key) if key else None
    if found is None:
        how = f"model type {model_type!r} not in {TABLE_FILE}: assumed {table['unknown']}"
        return BosDecision(model_type, table["unknown"], how, False)
    return BosDecision(model_type, found["policy"], found["how"], True)


def bos_note(policy_a: str | None, policy_b: str | None) -> str | None:
    """A warning when two entries were scored under different first-token policies, else None."""
    if policy_a == policy_b or policy_a is None or policy_b is None:
        return None
    return (
        f"bos_policy differs ({policy_a} vs {policy_b}): the first token's log-likelihood (~11 nats per text) "
        "enters one vector and not the other, which inflates the KL"
    )
