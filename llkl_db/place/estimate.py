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
against the infinite-text value the dataset's own SE refers to. ``assisted_variance`` (the
default of ``place``) also uses the entries' values on all N texts: a regression estimator.
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
    # SE of (estimate_j - estimate of the entry estimated nearest), from the same K texts (paired)
    se_vs_best: np.ndarray | None = None

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
    # paired: the difference of two estimates is, to first order, the mean of (d_j - dbar_j)^2 -
    # (d_b - dbar_b)^2 over the K texts, b the entry estimated nearest
    d_best = q - rows[int(np.argmin(var))].astype(np.float64)
    sq_best = (d_best - d_best.mean()) ** 2
    var_diff = np.empty(e)
    for start in range(0, e, block):
        d = q[None, :] - rows[start : start + block].astype(np.float64)
        d -= d.mean(axis=1, keepdims=True)
        var_diff[start : start + block] = (d * d - sq_best[None, :]).var(axis=1, ddof=1)
    return SubsetKL(
        var=var * scale,
        se_full=np.sqrt(var_s2 * fpc) * scale,
        se_total=np.sqrt(var_s2) * scale,
        n_used=k,
        n_texts=n_texts,
        se_vs_best=np.sqrt(var_diff * fpc / k) * scale,
    )


# --- the entries are known on every text: a regression (difference) estimator ------------------
ASSIST_REGRESSORS = 4  # nearest entries (by the plain estimate) that predict the model
ASSIST_SHARE = 10  # at most K / ASSIST_SHARE regressors, so the fit on K texts does not overfit


def assisted_variance(
    rows: np.ndarray, query: np.ndarray, text_ids: np.ndarray, regressors: int = ASSIST_REGRESSORS
) -> SubsetKL:
    """Var(l_q - l_j) over the N texts from K uniform texts, the entries' values on all N known.

    ``rows`` is E x N (the entries' clipped values on every text), ``query`` the model's K clipped
    values on the texts ``text_ids``. Derivation. Predict the model from the entries nearest to it
    (by the plain estimate), m = b0 + sum_c b_c y_c, fitted by least squares on the K texts; m is
    then known on every text. With l_q = m + e and a_j = m - y_j (known on every text),
    sigma2_j = Var_N(a_j) + 2 Cov_N(a_j, e) + Var_N(e): Var_N(a_j) is computed exactly;
    Cov_N(a_j, e) = (1/N) sum_s e_s (a_j,s - abar_j) is a population mean, estimated by the mean
    over the K texts (unbiased for fixed b); Var_N(e) by (N - 1)/N RSS / (K - p - 1), less the
    p Var(e) / K by which fitting b on the K texts raises the sum (to first order). Only the
    model's residual e, smaller than its difference to any regressor, is sampled: the noise of
    the difference between entries j and k is 2 mean_K(e (y_k - y_j)), against the plain
    estimator's mean_K((y_k - y_j)(2 l_q - y_j - y_k)). With b and the regressors taken from the
    sample this is a GREG estimator: its bias, O(p / K) before that correction, is measured by
    ``benchmarks/bench_place.py``; the derivative in b has mean zero, so the SE is that of
    the linearised value z_j,s = 2 e_s (a_j,s - abar_j) + e_s^2: sqrt((1 - K/N) s2_K(z_j) / K)
    (``se_full``; ``se_total`` adds the N texts' own noise against the infinite-text value)."""
    x = np.asarray(rows)
    q = np.asarray(query, dtype=np.float64)
    ids = np.asarray(text_ids, dtype=np.int64)
    e_rows, n = x.shape
    k = ids.size
    if q.shape != (k,):
        raise ValueError(f"query has shape {q.shape}, expected ({k},)")
    plain = subset_variance(x[:, ids], q, n)
    p = max(1, min(regressors, (k - 2) // ASSIST_SHARE, e_rows))
    chosen = np.argsort(plain.var, kind="stable")[:p]
    design = np.column_stack([np.ones(k), x[chosen][:, ids].T.astype(np.float64)])
    coef = np.linalg.lstsq(design, q, rcond=None)[0]
    resid = q - design @ coef
    m_full = coef[0] + coef[1:] @ x[chosen].astype(np.float64)  # the prediction on every text
    # the fit on the K texts overfits: E[var] exceeds sigma2 by about p Var(e) / K, taken off here
    var_e = (n - 1) / n * float(resid @ resid) / max(k - p - 1, 1) * (1.0 - p / k)
    var = np.empty(e_rows)
    var_z = np.empty(e_rows)
    a_mean = np.empty(e_rows)
    block = max(1, 4_000_000 // n)
    for start in range(0, e_rows, block):
        stop = start + block
        a = m_full[None, :] - x[start:stop].astype(np.float64)
        a_mean[start:stop] = a.mean(axis=1)
        a -= a_mean[start:stop, None]
        a_k = a[:, ids]
        var[start:stop] = np.einsum("ij,ij->i", a, a) / n + 2.0 * (a_k @ resid) / k + var_e
        var_z[start:stop] = (2.0 * resid[None, :] * a_k + resid[None, :] ** 2).var(axis=1, ddof=1)
    fpc = max(0.0, 1.0 - k / n)
    # paired: the difference to the entry b estimated nearest linearises to 2 mean_K(e (a_j - a_b))
    m_k = m_full[ids]
    best = int(np.argmin(var))
    a_best = m_k - x[best, ids].astype(np.float64) - a_mean[best]
    var_diff = np.empty(e_rows)
    for start in range(0, e_rows, block):
        a_k = m_k[None, :] - x[start : start + block][:, ids].astype(np.float64) - a_mean[start : start + block, None]
        var_diff[start : start + block] = (2.0 * resid[None, :] * (a_k - a_best[None, :])).var(axis=1, ddof=1)
    se_full = np.sqrt(var_z * fpc / k)
    # against the infinite-text value: the N texts' own sampling noise, Var((d - dbar)^2) / N, adds
    var_sq = (plain.se_total / ((n - 1) / n)) ** 2 * k
    return SubsetKL(
        var=var,
        se_full=se_full,
        se_total=np.sqrt(se_full**2 + var_sq / n),
        n_used=k,
        n_texts=n,
        se_vs_best=np.sqrt(var_diff * fpc / k),
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


# --- two-stage adaptive choice with importance weights -------------------------------------------
ADAPTIVE_MIX = 0.3  # share of the uniform distribution in the second stage's probabilities
MAX_CANDIDATES = 4  # entries whose disagreement steers the second stage (the nearest ones)
FIRST_SHARE = 0.3  # share of the K texts in the uniform first stage


def candidate_set(var: np.ndarray, se: np.ndarray, limit: int = MAX_CANDIDATES) -> np.ndarray:
    """Rows whose +-2 SE interval overlaps the best one's (the best first; at least two, at most
    ``limit``), from a first-stage estimate."""
    order = np.argsort(var, kind="stable")
    if order.size == 0:
        return order
    best = order[0]
    top = var[best] + 2.0 * se[best]
    keep = order[var[order] - 2.0 * se[order] <= top]
    if keep.size < 2:
        keep = order[:2]
    return keep[:limit]


def disagreement_probabilities(cand: np.ndarray, mix: float = ADAPTIVE_MIX) -> np.ndarray:
    """Second-stage draw probabilities p_s over the N texts from the candidates' stored values
    (``cand``: C x N, clipped): p_s = mix / N + (1 - mix) u_s / sum(u), with
    u_s = sqrt(sum over candidate pairs (x_a,s - x_b,s)^2) = sqrt(C sum_a (x_a,s - xbar_s)^2).
    The mixture keeps every weight 1 / (N p_s) at most 1 / mix."""
    cand = np.asarray(cand, dtype=np.float64)
    n = cand.shape[1]
    if not 0.0 < mix <= 1.0:
        raise ValueError(f"mix must lie in (0, 1], got {mix}")
    centred = cand - cand.mean(axis=0, keepdims=True)
    u = np.sqrt(cand.shape[0] * (centred * centred).sum(axis=0))
    total = float(u.sum())
    if cand.shape[0] < 2 or total <= 0 or not np.isfinite(total):
        return np.full(n, 1.0 / n)
    return mix / n + (1.0 - mix) * u / total


def draw_second_stage(p: np.ndarray, k2: int, seed: int = 0) -> np.ndarray:
    """``k2`` text ids drawn independently, with replacement, with probabilities ``p``."""
    rng = np.random.default_rng([seed, 2])
    return rng.choice(p.size, size=k2, replace=True, p=p / p.sum()).astype(np.int64)


def weighted_variance(rows: np.ndarray, query: np.ndarray, weights: np.ndarray, k1: int, n_texts: int) -> SubsetKL:
    """Var(l_q - l_j) over the N texts from a two-stage sample, unbiased for the full-text value.

    The K = K1 + K2 draws are the columns: the first ``k1`` a uniform sample without replacement
    (weight 1), the other K2 drawn with replacement with probabilities p_s fixed after stage 1
    (``weights`` w_i = 1 / (N p_{s_i}); repeats allowed).

    Derivation. With d_s = l_q,s - l_j,s, the full-text value is a pair sum,
    sigma2 = (1/N) sum_s (d_s - dbar)^2 = F / (2 N^2), F = sum_{s,t} (d_s - d_t)^2 (s = t adds 0),
    so no mean has to be estimated and squared (the bias of plugging in a centre is avoided). Every
    ordered pair of distinct draws (i, j) gives an unbiased estimate of F:
      both stage 1 (distinct uniform texts):   N (N - 1) (d_i - d_j)^2
      i stage 1, j stage 2:                     N^2 w_j (d_i - d_j)^2
      both stage 2 (independent draws):         N^2 w_i w_j (d_i - d_j)^2.
    (Given stage 1, a stage-2 draw has E[w_j f(s_j)] = (1/N) sum_t f(t) whatever the p chosen
    from stage 1, so the mixed pairs are unbiased given s_i, and then over s_i.) Averaging the
    K (K - 1) ordered pairs with equal, fixed weights keeps it unbiased:
      sigma2_hat = [sum_{i != j} w_i w_j (d_i - d_j)^2 - (1/N) sum_{i != j in stage 1} (d_i - d_j)^2]
                   / (2 K (K - 1))
                 = [W S2 - S1^2 - (K1 T2 - T1^2) / N] / (K (K - 1)),
    W = sum w, S1 = sum w d, S2 = sum w d^2 over all draws, T1, T2 the unweighted sums over stage
    1. All weights 1 (uniform, K2 = 0) gives the uniform estimator (N - 1)/N s2 exactly.

    SE: a U-statistic of order 2 with kernel h = w_i w_j (d_i - d_j)^2 / 2 has projection
    h1(i) = w_i ((d_i - mu)^2 + sigma2) / 2, so Var(sigma2_hat) ~ (1/K^2) sum_g K_g Var_g(z),
    z_i = w_i ((d_i - mu)^2 + sigma2), Var_g the variance of z within stage g (the sample variance
    over its draws, mu the weighted mean S1 / W); stage 1's term carries the finite-population
    factor (1 - K1/N) in ``se_full``; stage 2 (with replacement) has none."""
    rows = np.asarray(rows)
    q = np.asarray(query, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    e, k = rows.shape
    if q.shape != (k,) or w.shape != (k,):
        raise ValueError(f"query and weights need shape ({k},)")
    if not 2 <= k1 <= k or k < 3:
        raise ValueError("need at least 2 first-stage draws and 3 in all")
    k2 = k - k1
    n = float(n_texts)
    var = np.empty(e)
    var_z1 = np.empty(e)
    var_z2 = np.zeros(e)
    block = max(1, 4_000_000 // k)
    big_w = w.sum()
    for start in range(0, e, block):
        d = q[None, :] - rows[start : start + block].astype(np.float64)
        shift = d[:, :k1].mean(axis=1, keepdims=True)  # numerical centring only (cancels exactly)
        d -= shift
        s1 = d @ w
        s2 = (d * d) @ w
        t1 = d[:, :k1].sum(axis=1)
        t2 = (d[:, :k1] ** 2).sum(axis=1)
        v = (big_w * s2 - s1 * s1 - (k1 * t2 - t1 * t1) / n) / (k * (k - 1))
        var[start : start + block] = v
        mu = s1 / big_w
        z = w[None, :] * ((d - mu[:, None]) ** 2 + v[:, None])
        var_z1[start : start + block] = z[:, :k1].var(axis=1, ddof=1)
        if k2 >= 2:
            var_z2[start : start + block] = z[:, k1:].var(axis=1, ddof=1)
    fpc = max(0.0, 1.0 - k1 / n_texts)
    se_full = np.sqrt(np.maximum(k1 * var_z1 * fpc + k2 * var_z2, 0.0)) / k
    se_total = np.sqrt(np.maximum(k1 * var_z1 + k2 * var_z2, 0.0)) / k
    return SubsetKL(var=var, se_full=se_full, se_total=se_total, n_used=k, n_texts=n_texts)


@dataclass(frozen=True)
class AdaptiveChoice:
    """The texts of a two-stage choice: ``text_ids`` (stage 1, then stage-2 draws, repeats
    allowed), their importance weights and the size of stage 1."""

    text_ids: np.ndarray
    weights: np.ndarray
    k1: int


def adaptive_texts(
    stored: np.ndarray,
    score,
    n_texts: int,
    k: int,
    seed: int = 0,
    first_share: float = FIRST_SHARE,
    mix: float = ADAPTIVE_MIX,
    limit: int = MAX_CANDIDATES,
) -> tuple[AdaptiveChoice, np.ndarray]:
    """Two-stage choice: K1 = first_share K uniform texts are scored (``score(ids)`` returns the
    model's clipped values on them), the candidates whose interval overlaps the best one's are
    found, and K - K1 more texts are drawn with the candidates' disagreement probabilities
    (from ``stored``, the entries' clipped E x N values, known for every text). Returns the choice
    and the model's values on its texts (stage 1 first)."""
    k1 = max(MIN_PLACE_TEXTS, int(round(first_share * k)))
    if k1 >= k:
        ids = choose_texts(n_texts, k, seed)
        return AdaptiveChoice(ids, np.ones(k), k), np.asarray(score(ids), dtype=np.float64)
    first = choose_texts(n_texts, k1, seed)
    v1 = np.asarray(score(first), dtype=np.float64)
    est = subset_variance(stored[:, first], v1, n_texts)
    cand = candidate_set(est.var, est.se_full, limit)
    p = disagreement_probabilities(stored[cand], mix)
    second = draw_second_stage(p, k - k1, seed)
    v2 = np.asarray(score(second), dtype=np.float64)
    ids = np.concatenate([first, second])
    weights = np.concatenate([np.ones(k1), 1.0 / (n_texts * p[second])])
    return AdaptiveChoice(ids, weights, k1), np.concatenate([v1, v2])
