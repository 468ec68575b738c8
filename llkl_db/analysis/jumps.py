"""The papers' trajectory preprocessing (method.md section 3): drop the texts with the largest
jumps between consecutive checkpoints after warm-up. Pure array math."""

from __future__ import annotations

import math

import numpy as np

PAPER_FRACTION = 0.03
PAPER_WARMUP_FRACTION = 2000 / 143000  # Pythia: jumps counted after step 2000 of 143000


def jump_keep_mask(loglik: np.ndarray, steps: np.ndarray, after_step: float, fraction: float) -> np.ndarray:
    """Boolean mask over the N texts: False for the ``fraction`` of texts whose largest jump
    |Delta l - mean Delta l| between consecutive checkpoints (rows in step order) starting at or
    after ``after_step`` is largest. All True when no pair starts after ``after_step``."""
    x = np.asarray(loglik, dtype=np.float64)
    steps = np.asarray(steps)
    n = x.shape[1]
    keep = np.ones(n, dtype=bool)
    drop = math.ceil(fraction * n) if fraction > 0 else 0
    starts = np.flatnonzero(steps[:-1] >= after_step)
    if drop == 0 or starts.size == 0:
        return keep
    diff = x[starts + 1] - x[starts]
    diff -= diff.mean(axis=1, keepdims=True)  # a checkpoint-wide shift is not a jump of a text
    jump = np.abs(diff).max(axis=0)
    keep[np.argsort(-jump, kind="stable")[: min(drop, n - 2)]] = False
    return keep
