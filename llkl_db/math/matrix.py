"""The full K x K KL matrix from one symmetric BLAS product, with exact refinement of near pairs."""

from __future__ import annotations

import numpy as np

from .centering import Prepared
from .kl import variance_with_se


def sq_distance_matrix(prepared: Prepared, refine: bool = True) -> np.ndarray:
    """Var(l_i - l_j) * N for all pairs (float64 K x K), from the Gram matrix of the centred rows.

    Pairs whose float32 result lies within its rounding bound of zero (near-identical entries,
    where |q_i|^2 + |q_j|^2 - 2 q_i.q_j cancels) are recomputed exactly in float64.
    """
    x = prepared.centered
    gram = x @ x.T  # numpy runs A @ A.T as a symmetric rank-k update (syrk)
    norms = prepared.sq_norms
    dist = norms[:, None] + norms[None, :] - 2.0 * gram.astype(np.float64)
    np.fill_diagonal(dist, 0.0)
    if refine:
        bound = 8.0 * np.sqrt(x.shape[1]) * np.finfo(np.float32).eps * (norms[:, None] + norms[None, :])
        rows, cols = np.nonzero(np.triu(dist < 4.0 * bound, k=1))
        for start in range(0, rows.size, 4096):
            r, c = rows[start : start + 4096], cols[start : start + 4096]
            diff = prepared.clipped[r].astype(np.float64) - prepared.clipped[c].astype(np.float64)
            var, _ = variance_with_se(diff)
            dist[r, c] = dist[c, r] = var * x.shape[1]
    return np.maximum(dist, 0.0)


def variance_matrix(prepared: Prepared, refine: bool = True) -> np.ndarray:
    """Var(l_i - l_j) for all pairs: twice the KL in nats per text."""
    return sq_distance_matrix(prepared, refine=refine) / prepared.n_texts


def variance_se_matrix(prepared: Prepared) -> np.ndarray:
    """Delta-method standard errors of every Var(l_i - l_j), from moment products in float64.

    With d = a - b (both centred), sum d^4 = sum a^4 - 4 a^3 b + 6 a^2 b^2 - 4 a b^3 + b^4.
    """
    x = prepared.centered.astype(np.float64)
    n = x.shape[1]
    x2, x3 = x * x, x * x * x
    p4 = (x2 * x2).sum(axis=1)
    cross = -4.0 * (x3 @ x.T) + 3.0 * (x2 @ x2.T)
    m4 = (p4[:, None] + p4[None, :] + cross + cross.T) / n
    var = variance_matrix(prepared, refine=True)
    se = np.sqrt(np.maximum(m4 - var * var, 0.0) / n)
    np.fill_diagonal(se, 0.0)
    return se
