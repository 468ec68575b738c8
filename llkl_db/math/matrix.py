"""The full K x K KL matrix from one symmetric BLAS product, with exact refinement of near pairs.

||q_i - q_j||^2 = |q_i|^2 + |q_j|^2 - 2 q_i.q_j with the Gram matrix of the double-centred rows
(float32 syrk: half the flops of a general product) and float64 norms. The float32 products
have an error of order sqrt(N) eps (|q_i|^2 + |q_j|^2); pairs whose distance is not far above
that (near-identical entries, where the difference cancels) are recomputed exactly in float64
from the clipped rows, so that every reported value has a relative error below about 1e-3.
"""

from __future__ import annotations

import numpy as np

from .centering import Prepared
from .kl import variance_with_se

# A pair is refined when its float32 distance is below REFINE_FACTOR * sqrt(N) * eps32 * (|q_i|^2 + |q_j|^2).
REFINE_FACTOR = 1024.0
_BLOCK_ROWS = 256
_PAIR_CHUNK_ELEMENTS = 4_000_000  # float64 elements per chunk of exact pair differences (32 MB)


def sq_distance_matrix(prepared: Prepared, refine: bool = True) -> np.ndarray:
    """Var(l_i - l_j) * N for all pairs (float64 K x K), from the Gram matrix of the centred rows."""
    dist, _ = _distances(prepared, refine)
    return dist


def variance_matrix(prepared: Prepared, refine: bool = True) -> np.ndarray:
    """Var(l_i - l_j) for all pairs: twice the KL in nats per text."""
    dist, _ = _distances(prepared, refine)
    dist /= prepared.n_texts
    return dist


def near_pairs(prepared: Prepared, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs i < j whose float32 distance ``dist`` (N-scaled) lies within the refinement margin."""
    norms = prepared.sq_norms
    k = norms.size
    factor = REFINE_FACTOR * np.sqrt(prepared.n_texts) * np.finfo(np.float32).eps
    rows, cols = [], []
    for start in range(0, k, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, k)
        tol = norms[start:stop, None] + norms[None, start:]
        tol *= factor
        r, c = np.nonzero(dist[start:stop, start:] < tol)
        c += start
        r += start
        upper = c > r
        rows.append(r[upper])
        cols.append(c[upper])
    return np.concatenate(rows), np.concatenate(cols)


def _distances(prepared: Prepared, refine: bool) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    x = prepared.centered
    k, n = x.shape
    norms = prepared.sq_norms
    gram = x @ x.T  # numpy runs A @ A.T as a symmetric rank-k update (syrk)
    dist = np.empty((k, k), dtype=np.float64)
    for start in range(0, k, _BLOCK_ROWS):  # in blocks: no K x K temporaries
        stop = min(start + _BLOCK_ROWS, k)
        block = dist[start:stop]
        np.multiply(gram[start:stop], -2.0, out=block)
        block += norms[start:stop, None]
        block += norms[None, :]
    del gram
    np.fill_diagonal(dist, 0.0)
    pairs = (np.empty(0, np.int64), np.empty(0, np.int64))
    if refine:
        pairs = near_pairs(prepared, dist)
        rows, cols = pairs
        for r, c, var, _ in _exact_pairs(prepared.clipped, rows, cols):
            dist[r, c] = dist[c, r] = var * n
    np.maximum(dist, 0.0, out=dist)
    return dist, pairs


def _exact_pairs(clipped: np.ndarray, rows: np.ndarray, cols: np.ndarray):
    """Yield (rows, cols, Var, SE) chunk by chunk, exactly in float64 from the clipped rows."""
    chunk = max(1, _PAIR_CHUNK_ELEMENTS // max(1, clipped.shape[1]))
    for start in range(0, rows.size, chunk):
        r, c = rows[start : start + chunk], cols[start : start + chunk]
        diff = clipped[r].astype(np.float64)
        diff -= clipped[c]
        var, se = variance_with_se(diff)
        yield r, c, var, se


def variance_se_matrix(prepared: Prepared) -> np.ndarray:
    """Delta-method standard errors of every Var(l_i - l_j), from moment products in float64.

    With d = a - b (both centred), sum d^4 = sum a^4 - 4 a^3 b + 6 a^2 b^2 - 4 a b^3 + b^4.
    That sum cancels for near pairs, which are computed exactly from the clipped rows instead.
    """
    var, (rows, cols) = _distances(prepared, refine=True)
    n = prepared.n_texts
    var /= n
    x = prepared.centered.astype(np.float64)
    x2 = x * x
    p4 = np.einsum("ij,ij->i", x2, x2)
    m4 = x2 @ x2.T
    m4 *= 3.0
    x2 *= x  # x^3
    m4 -= 4.0 * (x2 @ x.T)
    del x, x2
    m4 += m4.T.copy()
    m4 += p4[:, None]
    m4 += p4[None, :]
    m4 /= n
    m4 -= var * var
    np.maximum(m4, 0.0, out=m4)
    m4 /= n
    se = np.sqrt(m4, out=m4)
    for r, c, _, se_exact in _exact_pairs(prepared.clipped, rows, cols):
        se[r, c] = se[c, r] = se_exact
    np.fill_diagonal(se, 0.0)
    return se
