"""KL divergence from log-likelihood vectors, with its standard error (method.md, section 2).

2 KL(p_i, p_j) ~ Var_s(l_i(x_s) - l_j(x_s)) (population variance over the N texts), reported
in nats per text (Var / 2) and in bits per byte (Var / (2 B ln 2), B = mean text bytes).
The estimate is a sample variance, so its standard error follows from the delta method:
SE(Var) = sqrt((m4 - m2^2) / N), m_k the central moments of the differences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LN2 = math.log(2.0)


@dataclass(frozen=True)
class KLEstimate:
    """KL estimates and standard errors, in nats/text and bits/byte (scalars or arrays)."""

    kl_nats: np.ndarray | float
    se_nats: np.ndarray | float
    kl_bpb: np.ndarray | float
    se_bpb: np.ndarray | float


def nats_to_bits_per_byte(kl_nats: np.ndarray | float, mean_bytes: float) -> np.ndarray | float:
    """Convert KL in nats per text to bits per byte, given the mean text length B in bytes."""
    return kl_nats / (mean_bytes * LN2)


def from_variance(var: np.ndarray | float, se_var: np.ndarray | float, mean_bytes: float) -> KLEstimate:
    """Turn Var(l_i - l_j) and its standard error into a :class:`KLEstimate`."""
    kl_nats = np.asarray(var, dtype=np.float64) / 2.0
    se_nats = np.asarray(se_var, dtype=np.float64) / 2.0
    if kl_nats.ndim == 0:
        kl_nats, se_nats = float(kl_nats), float(se_nats)
    return KLEstimate(
        kl_nats=kl_nats,
        se_nats=se_nats,
        kl_bpb=nats_to_bits_per_byte(kl_nats, mean_bytes),
        se_bpb=nats_to_bits_per_byte(se_nats, mean_bytes),
    )


def variance_with_se(diff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Population variance of each row of ``diff`` (float64) and its delta-method standard error."""
    sq = np.array(diff, dtype=np.float64)  # a copy, squared in place (fewer passes and allocations)
    sq -= sq.mean(axis=-1, keepdims=True)
    np.square(sq, out=sq)
    m2 = sq.mean(axis=-1)
    m4 = np.square(sq).mean(axis=-1)
    n = sq.shape[-1]
    se = np.sqrt(np.maximum(m4 - m2 * m2, 0.0) / n)
    return m2, se


def pair_kl(a: np.ndarray, b: np.ndarray, mean_bytes: float) -> KLEstimate:
    """KL between two clipped vectors (or between row-aligned stacks of them), exactly in float64."""
    var, se = variance_with_se(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return from_variance(var, se, mean_bytes)


# --- bias the standard error does not cover -------------------------------------------------
#
# The SE above is sampling noise only. Two biases come on top (method.md, section 2):
# clipping at the 2nd percentile, and the second-order approximation Var / 2 ~ KL. Measured on
# the exact-KL Markov-chain family of tests/test_math.py by
#     python benchmarks/bench_bias.py --out benchmarks/results/bias.json
# (3 chains x 8 perturbation sizes x 10 pairs, N = 100,000 texts of 24..72 one-byte symbols;
# table in benchmarks/results/bias.txt): clipping -3.6% of KL at 0.00025 bits/byte to -4.5% at
# 0.056; second order +0.02% at 0.001 bits/byte, +1.5% at 0.025, +3.7% at 0.056 (0.03, 0.83 and
# 1.9 nats/text); at N = 100,000 the exact value sits 10-27 SE from the estimate. The envelope
# fitted there, |clipping| + |second order| <= (a + b KL) KL with KL in bits/byte, gives
# a = 0.0532, b = 1.0255, rounded up below. KL is per byte because the second-order term is a
# per-symbol effect. Above 0.056 bits/byte, the largest KL measured, the margin is not
# extrapolated: it stays at the relative size it has there (about 11% of KL).
BIAS_A = 0.054
BIAS_B = 1.03
BIAS_MEASURED_UP_TO_BPB = 0.056
SE_NOTE = (
    "SE covers sampling noise only: clipping and the second-order approximation add a bias of "
    "about 4-6% of KL, more for distant models, that it does not cover (bias_margin bounds it)"
)


def bias_margin_bpb(kl_bpb: np.ndarray | float) -> np.ndarray | float:
    """A bound on the estimator's bias in bits/byte: ``(BIAS_A + BIAS_B * KL) * KL`` up to the
    largest KL measured, then the relative margin reached there (measured by
    ``benchmarks/bench_bias.py``, see the comment above). Widen an interval by it on both sides:
    KL +- (2 SE + margin)."""
    kl = np.abs(np.asarray(kl_bpb, dtype=np.float64))
    out = (BIAS_A + BIAS_B * np.minimum(kl, BIAS_MEASURED_UP_TO_BPB)) * kl
    return float(out) if out.ndim == 0 else out
