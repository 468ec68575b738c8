"""KL to every entry from K of the N texts (arrays in, arrays out, no I/O).

The full-text value for entry j is the population variance over the N texts,
sigma2_j = (1/N) sum_s (d_s - dbar)^2 with d = l_q - l_j (clipped). The K texts are a simple
random sample without replacement (every text equally likely: ``choose_texts``), so the
unbiased sample variance s2 = sum_{s in K} (d_s - dbar_K)^2 / (K - 1), whose mean is centred on
the K texts themselves, has E[s2] = N sigma2 / (N - 1) exactly (finite-population sampling):
the estimate (N - 1) / N * s2 is unbiased for the full-text value.

Its standard error is the delta method with the finite-population correction,
Var(s2) ~ (1 - K/N) [m4 / K - s2^2 (K - 3) / (K (K - 1))] (the exact iid formula, shrunk by
the share of texts not sampled), m4 the 4th central moment on the K texts: ``se_full`` is the
error against the full-text value (it vanishes at K = N), ``se_total`` (no correction) the error
against the infinite-text value the dataset's own SE refers to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llkl_db.math.kl import LN2

MIN_PLACE_TEXTS = 10  # below this a variance over texts and its SE mean nothing
TARGET_RELATIVE_SE = 0.10


def choose_texts(n_texts: int, k: int, seed: int = 0) -> np.ndarray:
    """K distinct text indices of 0..N-1, uniformly at random without replacement (sorted)."""
    if not MIN_PLACE_TEXTS <= k <= n_texts:
        raise ValueError(f"K must be between {MIN_PLACE_TEXTS} and N = {n_texts}, got {k}")
    # the first K of one seeded permutation: a uniform sample, and the texts for a smaller K are
    # among those for a larger one (a rerun with more texts reuses a saved partial shard)
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(n_texts)[:k]).astype(np.int64)


@dataclass(frozen=True)
class SubsetKL:
    """Estimates of Var(l_q - l_j) over the N texts from K of them, for every row j."""

    var: np.ndarray  # unbiased for the full-text population variance
    se_full: np.ndarray  # SE against the full-text value (finite-population corrected)
    se_total: np.ndarray  # SE against the infinite-text value
    n_used: int
    n_texts: int

    def kl_bpb(self, mean_bytes: float) -> tuple[np.ndarray, np.ndarray]:
        """KL and its SE (against the full-text value) in bits/byte."""
        scale = 1.0 / (2.0 * mean_bytes * LN2)
        return self.var * scale, self.se_full * scale


def subset_variance(rows: np.ndarray, query: np.ndarray, n_texts: int) -> SubsetKL:
    """Var(l_q - l_j) over N texts estimated from the K columns given.

    ``rows`` is E x K (the entries' clipped values on the chosen texts), ``query`` the K clipped
    values of the model placed, ``n_texts`` N. Works in float64, in blocks of rows."""
    rows = np.asarray(rows)
    q = np.asarray(query, dtype=np.float64)
    e, k = rows.shape
    if q.shape != (k,):
        raise ValueError(f"query has shape {q.shape}, expected ({k},)")
    if k < 2:
        raise ValueError("need at least 2 texts")
    var = np.empty(e)
    m4 = np.empty(e)
    block = max(1, 4_000_000 // k)
    for start in range(0, e, block):
        d = q[None, :] - rows[start : start + block].astype(np.float64)
        d -= d.mean(axis=1, keepdims=True)
        sq = d * d
        var[start : start + block] = sq.sum(axis=1) / (k - 1)
        m4[start : start + block] = (sq * sq).mean(axis=1)
    fpc = max(0.0, 1.0 - k / n_texts)
    var_s2 = np.maximum(m4 / k - var * var * (k - 3) / (k * (k - 1)), 0.0)
    scale = (n_texts - 1) / n_texts
    return SubsetKL(
        var=var * scale,
        se_full=np.sqrt(var_s2 * fpc) * scale,
        se_total=np.sqrt(var_s2) * scale,
        n_used=k,
        n_texts=n_texts,
    )


def texts_for_relative_se(kurtosis_ratio: float, n_texts: int, target: float = TARGET_RELATIVE_SE) -> int:
    """The K at which the SE of a variance is ``target`` of it against the full-text value:
    (SE / Var)^2 ~ (r - 1) (1/K - 1/N), r = m4 / m2^2 of the differences."""
    excess = max(float(kurtosis_ratio) - 1.0, 1e-12)
    k = 1.0 / (target * target / excess + 1.0 / n_texts)
    return int(min(n_texts, max(MIN_PLACE_TEXTS, math.ceil(k))))


def kurtosis_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """m4 / m2^2 of the centred differences a - b (3 for Gaussian differences)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    d -= d.mean()
    m2 = float(np.mean(d * d))
    if m2 <= 0:
        return 3.0
    return float(np.mean(d**4)) / (m2 * m2)


def default_text_count(ratios: list[float] | np.ndarray, n_texts: int, target: float = TARGET_RELATIVE_SE) -> int:
    """The K that keeps the SE of nearest distances near ``target`` of them on this dataset,
    from the kurtosis ratios of sampled (entry, its nearest entry) pairs: the median K they need."""
    ratios = np.asarray(ratios, dtype=np.float64)
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return int(min(n_texts, 300))
    return texts_for_relative_se(float(np.median(ratios)), n_texts, target)
