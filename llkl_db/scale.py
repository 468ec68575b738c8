"""The KL scale of settings (arXiv 2505.15353, Kishino et al.): where a distance sits among them.

Reference medians in bits/byte, as summarised in method.md section 3 (orders of magnitude).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REFERENCE_MEDIANS: dict[str, float] = {
    "consecutive late checkpoints": 0.011,
    "consecutive early checkpoints": 0.067,
    "random seeds": 0.12,
    "8-bit quantization": 0.44,
    "4-bit quantization": 0.49,
    "fine-tuned child vs parent": 0.40,
    "model sizes within a family": 0.48,
    "same model type": 0.95,
    "any two models": 2.2,
    "adjacent layers": 3.0,
    # the same settings under the kl-scale release's own definitions
    "pretraining, first 50 intervals": 0.067,
    "pretraining, last 50 intervals": 0.011,
    "Pythia sizes, final step": 0.48,
}


@dataclass(frozen=True)
class Level:
    """A band of the scale: distances up to ``upper`` bits/byte read as ``name``."""

    name: str
    upper: float


def _between(a: float, b: float) -> float:
    return math.sqrt(a * b)  # bands meet halfway on a log scale


LEVELS: tuple[Level, ...] = (
    # closer than consecutive late checkpoints: dtype casts, fine quantization, near-duplicates
    Level("below-checkpoint", REFERENCE_MEDIANS["consecutive late checkpoints"]),
    Level("checkpoint", _between(0.067, 0.12)),
    Level("seed", _between(0.12, 0.40)),
    Level("quantization/fine-tune", _between(0.49, 0.95)),
    Level("same-type", _between(0.95, 2.2)),
    Level("other-family", math.inf),
)


def level_of(kl_bpb: float) -> str:
    """The name of the band a KL value (bits/byte) falls in."""
    for level in LEVELS:
        if kl_bpb <= level.upper:
            return level.name
    return LEVELS[-1].name


def scale_line(kl_values: list[float]) -> str:
    """One line summarising how many distances fall in each band of the scale."""
    counts: dict[str, int] = {}
    for value in kl_values:
        name = level_of(value)
        counts[name] = counts.get(name, 0) + 1
    parts = [f"{counts[level.name]} {level.name}-level" for level in LEVELS if level.name in counts]
    bands = ", ".join(f"{level.name} <= {level.upper:.2g}" for level in LEVELS[:-1])
    return f"Scale (arXiv 2505.15353; bits/byte: {bands}): " + ", ".join(parts)
