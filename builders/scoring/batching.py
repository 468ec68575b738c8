"""Grouping windows into batches of similar length (less padding, same results)."""

from __future__ import annotations

from llkl_db.builders.scoring.windows import Window


def plan_batches(windows: list[Window], batch_size: int) -> list[list[Window]]:
    """Windows sorted by length, longest first (an out-of-memory shows up at once), in batches."""
    ordered = sorted(windows, key=lambda w: (-len(w.input_ids), w.text_index))
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
