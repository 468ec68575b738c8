"""Placing a KL value on the scale of arXiv 2505.15353."""

from __future__ import annotations

import pytest

from llkl_db.scale import level_of, scale_line


@pytest.mark.parametrize(
    "kl,level",
    [
        (0.0005, "below-checkpoint"),  # a bf16 cast of SmolLM2 in the embedded dataset
        (0.011, "below-checkpoint"),
        (0.05, "checkpoint"),
        (0.12, "seed"),
        (0.44, "quantization/fine-tune"),
        (0.95, "same-type"),
        (2.2, "other-family"),
        (38.0, "other-family"),
    ],
)
def test_level_of(kl, level):
    assert level_of(kl) == level


def test_scale_line_counts_each_band_in_order():
    line = scale_line([0.0005, 0.05, 0.06, 3.0])
    assert line.endswith("1 below-checkpoint-level, 2 checkpoint-level, 1 other-family-level")
