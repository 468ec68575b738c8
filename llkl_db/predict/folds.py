"""Grouped cross-validation folds: every group (model type) lies wholly in one fold, so a
prediction never sees a model of its own type in training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def group_folds(groups: Sequence, n_folds: int) -> list[np.ndarray]:
    """Test-index arrays of ``min(n_folds, n_groups)`` folds, groups assigned largest first to
    the currently smallest fold (deterministic: ties break by group name)."""
    labels = np.asarray([str(g) for g in groups])
    names, counts = np.unique(labels, return_counts=True)
    k = min(n_folds, len(names))
    if k < 2:
        raise ValueError(f"grouped cross-validation needs at least 2 groups, got {len(names)}")
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
    sizes = np.zeros(k, dtype=np.int64)
    members: list[list[str]] = [[] for _ in range(k)]
    for i in order:
        f = int(np.argmin(sizes))
        members[f].append(names[i])
        sizes[f] += counts[i]
    return [np.flatnonzero(np.isin(labels, m)) for m in members]
