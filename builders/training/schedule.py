"""Checkpoint steps and learning-rate schedules (pure functions)."""

from __future__ import annotations

import math


def pythia_steps(final: int, every: int, log_until: int = 512) -> list[int]:
    """Pythia-like checkpoint steps: 0, 1, 2, 4, ..., ``log_until``, then every ``every`` steps
    up to ``final`` (which is always included)."""
    if final < 1 or every < 1:
        raise ValueError("final and every must be positive")
    steps = [0]
    s = 1
    while s <= min(log_until, final):
        steps.append(s)
        s *= 2
    s = steps[-1] + every
    while s < final:
        steps.append(s)
        s += every
    if steps[-1] != final:
        steps.append(final)
    return steps


def lr_at(step: int, peak: float, warmup: int, final: int, final_fraction: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to ``final_fraction * peak``
    at ``final`` (``step`` counts updates from 1)."""
    if step <= warmup:
        return peak * step / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, final - warmup))
    return peak * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))
