"""Which checkpoint pairs to compare (consecutive and windowed) and the rows they give."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .distances import sq_distance


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint of one run: its revision, step and local folder."""

    revision: str
    step: int
    folder: Path


def checkpoint_pairs(n: int, window: int) -> list[tuple[int, int]]:
    """Index pairs (i, j), i < j <= i + window, of n checkpoints sorted by step: every
    checkpoint with each of the next ``window`` (window 1 = consecutive pairs only)."""
    if window < 1:
        raise ValueError("window must be at least 1")
    return [(i, j) for i in range(n) for j in range(i + 1, min(n, i + window + 1))]


def weight_distance_rows(
    model_id: str,
    checkpoints: Sequence[Checkpoint],
    window: int = 10,
    skip: set[tuple[str, str]] | None = None,
    on_pair: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Rows of the weight_distances table for the consecutive and windowed pairs of one run
    (``skip``: (revision_a, revision_b) already computed)."""
    ordered = sorted(checkpoints, key=lambda c: c.step)
    rows = []
    pairs = checkpoint_pairs(len(ordered), window)
    for done, (i, j) in enumerate(pairs, 1):
        a, b = ordered[i], ordered[j]
        if skip and (a.revision, b.revision) in skip:
            continue
        distance, count = sq_distance(a.folder, b.folder)
        rows.append(
            {
                "model_id": model_id,
                "revision_a": a.revision,
                "step_a": a.step,
                "revision_b": b.revision,
                "step_b": b.step,
                "sq_distance": distance,
                "n_params": count,
                "created_at": datetime.now(UTC),
            }
        )
        if on_pair:
            on_pair(done, len(pairs))
    return rows
