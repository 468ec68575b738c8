"""Pure math of llkl-db: arrays in, arrays out, no I/O (formulas in method.md, section 2)."""

from .centering import (
    DEFAULT_CLIP_PERCENTILE,
    Prepared,
    center_rows,
    clip,
    clip_threshold,
    double_center,
    group_thresholds,
    prepare,
    prepare_clipped,
)
from .kl import SE_NOTE, KLEstimate, bias_margin_bpb, from_variance, nats_to_bits_per_byte, pair_kl, variance_with_se
from .matrix import sq_distance_matrix, variance_matrix, variance_se_matrix
from .nearest import nearest

__all__ = [
    "DEFAULT_CLIP_PERCENTILE",
    "SE_NOTE",
    "bias_margin_bpb",
    "KLEstimate",
    "Prepared",
    "center_rows",
    "clip",
    "clip_threshold",
    "group_thresholds",
    "double_center",
    "from_variance",
    "nats_to_bits_per_byte",
    "nearest",
    "pair_kl",
    "prepare",
    "prepare_clipped",
    "sq_distance_matrix",
    "variance_matrix",
    "variance_se_matrix",
    "variance_with_se",
]
