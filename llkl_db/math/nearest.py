"""Nearest entries by KL: one BLAS pass over the centred matrix, then an exact float64 re-rank.

||q_i - q_j||^2 = |q_i|^2 + |q_j|^2 - 2 q_i.q_j with cached norms costs one matrix-vector
product. In float32 that difference cancels badly for near-identical checkpoints, so the
candidates whose approximate distance is within the rounding bound of the k-th are re-ranked
exactly from the clipped rows in float64.
"""

from __future__ import annotations

import numpy as np

from .centering import Prepared
from .kl import variance_with_se


def approximate_sq_distances(prepared: Prepared, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared distances from a double-centred query to every row, and a bound on their error."""
    centered = prepared.centered
    q = np.asarray(query, dtype=np.float32)
    dots = centered @ q
    q_norm = float(np.dot(q.astype(np.float64), q.astype(np.float64)))
    dist = prepared.sq_norms + q_norm - 2.0 * dots.astype(np.float64)
    # float32 dot products over N terms: error ~ sqrt(N) eps (|q|^2 + |x|^2); keep a wide margin.
    bound = 8.0 * np.sqrt(centered.shape[1]) * np.finfo(np.float32).eps * (prepared.sq_norms + q_norm)
    return dist, bound


def nearest(
    prepared: Prepared,
    query_clipped: np.ndarray,
    k: int,
    candidates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the k rows nearest to a clipped query, with Var(l_q - l_j) and its SE.

    ``candidates`` is an optional boolean mask of rows allowed in the answer. The variances are
    exact (float64 from the clipped rows); results are sorted by them.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    query_centered = prepared.center_vector(query_clipped)
    dist, bound = approximate_sq_distances(prepared, query_centered)
    if candidates is not None:
        dist = np.where(candidates, dist, np.inf)
    allowed = int(np.count_nonzero(np.isfinite(dist)))
    k = min(k, allowed)
    if k == 0:
        empty = np.empty(0)
        return empty.astype(np.int64), empty, empty
    # The true k-th distance is at most the k-th smallest upper bound; a row can only be among
    # the k nearest if its lower bound does not exceed that.
    kth_upper = np.partition(dist + bound, k - 1)[k - 1]
    pool = np.flatnonzero(dist - bound <= kth_upper)
    diff = prepared.clipped[pool].astype(np.float64) - np.asarray(query_clipped, np.float64)
    var, se = variance_with_se(diff)
    order = np.argsort(var, kind="stable")[:k]
    return pool[order], var[order], se[order]
