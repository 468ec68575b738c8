"""A projection index for exact nearest-entry search over many entries (arrays in, arrays out).

Row-centred vectors c_i = clip(l_i) - mean_s clip(l_i) give Var_s(l_i - l_j) = ||c_i - c_j||^2 / N.
With an orthonormal basis B (d x N, rows) and a mean mu, each entry keeps its coordinates
y_i = (c_i - mu) B^T and its residual norm r_i = ||(c_i - mu) - y_i B||. Because the residuals
are orthogonal to the basis,

    ||c_i - c_j||^2 >= ||y_i - y_j||^2 + (r_i - r_j)^2  =: LB_ij,

a lower bound on every exact squared distance. Stored coordinates are float32 and the stored
basis is orthonormal only to float32 rounding, so :func:`lower_bounds` deflates the bound by a
relative ``tau`` of the norms |z_i| = sqrt(|y_i|^2 + r_i^2) = |c_i - mu| (triangle inequality in
the d + 1 dimensions (y, r)), with tau above the basis' measured departure from orthonormality.

:func:`search` visits candidates in increasing LB, computes their exact distances in float64
from the fetched rows, and stops when the k-th exact distance is below the next LB: the answer
is exact and comes with its certificate (rows re-ranked, smallest LB not re-ranked).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .kl import variance_with_se

DEFAULT_DIM = 64
DEFAULT_SAMPLE = 20_000
BASE_TAU = 1e-5  # relative deflation of the bound, on the norms
LEAF_ROWS = 16  # kd leaves: whole row groups of any size rows_per_group gives (16, 32, 64)
GROUP_WINDOW = 64  # candidates looked at per row group of a batch (with group_of)
RERANK_CHUNK = 8  # rows re-ranked at once: between chunks the search prunes the rest (8: half the rows of 32)
_F32_EPS = float(np.finfo(np.float32).eps)


def center_rows(clipped: np.ndarray) -> np.ndarray:
    """c = clipped - each row's mean, float64."""
    x = np.asarray(clipped, dtype=np.float64)
    return x - x.mean(axis=-1, keepdims=True)


def fit_basis(
    sample_clipped: np.ndarray,
    d: int = DEFAULT_DIM,
    seed: int = 0,
    oversample: int = 16,
    power_iters: int = 3,
    overwrite: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top-``d`` principal directions of the row-centred, column-centred sample.

    Returns (mu float64 (N,), basis float32 (d, N) with orthonormal rows, singular values). A
    randomized SVD in float64 (Halko et al.); d is capped at the sample's rank bound. With
    ``overwrite`` a float64 sample is centred in place (no copy of it is made).
    """
    c = sample_clipped if overwrite and sample_clipped.dtype == np.float64 else np.array(sample_clipped, np.float64)
    c -= c.mean(axis=-1, keepdims=True)
    mu = c.mean(axis=0)
    c -= mu
    m, n = c.shape
    d = max(1, min(d, m - 1 if m > 1 else 1, n - 1))
    width = min(d + oversample, m, n)
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(c @ rng.standard_normal((n, width)))[0]
    for _ in range(power_iters):
        q = np.linalg.qr(c.T @ q)[0]
        q = np.linalg.qr(c @ q)[0]
    small = q.T @ c
    _, s, vt = np.linalg.svd(small, full_matrices=False)
    basis = vt[:d]
    # Round to the stored precision and re-orthonormalize once in float64, so the stored
    # float32 rows are as orthonormal as float32 allows.
    basis = np.linalg.qr(basis.astype(np.float32).astype(np.float64).T)[0].T
    return mu, basis.astype(np.float32), s[:d]


def orthonormality_error(basis: np.ndarray) -> float:
    """||B B^T - I||_F of the basis as stored (float32 rows, computed in float64)."""
    b = np.asarray(basis, dtype=np.float64)
    return float(np.linalg.norm(b @ b.T - np.eye(b.shape[0])))


def project(clipped: np.ndarray, mu: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates (float32), residual norms and total norms |c - mu| (float64) of clipped rows,
    computed in float64 with the basis as stored."""
    x = center_rows(clipped)
    x -= mu
    b = np.asarray(basis, dtype=np.float64)
    y = x @ b.T
    total = np.einsum("ij,ij->i", x, x)
    x -= y @ b
    r = np.sqrt(np.einsum("ij,ij->i", x, x))
    return y.astype(np.float32), r, np.sqrt(total)


def residual_fraction(residuals: np.ndarray, totals: np.ndarray) -> float:
    """sum r^2 / sum ||c - mu||^2: the energy the basis does not capture."""
    den = float(np.sum(np.square(totals)))
    return float(np.sum(np.square(residuals)) / den) if den > 0 else 0.0


def tau_for(orthonormality: float) -> float:
    """The relative deflation that keeps the bound valid for a stored basis whose
    :func:`orthonormality_error` is ``orthonormality``."""
    return BASE_TAU + 4.0 * orthonormality


def coord_norms(coords: np.ndarray) -> np.ndarray:
    """|y_i| per row of the float32 coordinates, computed in float64."""
    return np.sqrt(np.einsum("ij,ij->i", coords, coords, dtype=np.float64))


def lower_bounds(
    coords: np.ndarray,
    residuals: np.ndarray,
    norms: np.ndarray,
    q: int | tuple[np.ndarray, float, float],
    tau: float,
    ynorms: np.ndarray | None = None,
    block: int = 1 << 18,
) -> np.ndarray:
    """Lower bounds on ||c_q - c_j||^2 for every row j (float64).

    ``q`` is a row position or (coords, residual, norm) of an outside vector. ``norms`` are
    sqrt(|y|^2 + r^2), ``ynorms`` |y| (:func:`coord_norms`; computed when None). ||y_j - y_q||^2
    is |y_j|^2 + |y_q|^2 - 2 y_j.y_q with the dot products in float32 (one matrix-vector product:
    one pass over the coordinates), deflated by their rounding bound gamma_d |y_j| |y_q| (any
    summation order) and the float64 rounding; then the distance by tau (|z_q| + |z_j|)."""
    if ynorms is None:
        ynorms = coord_norms(coords)
    if isinstance(q, (int, np.integer)):
        yq, rq, nq = coords[q], float(residuals[q]), float(norms[q])
    else:
        yq, rq, nq = q
    yq = np.asarray(yq, dtype=np.float32)
    k, d = coords.shape
    nyq = float(np.sqrt(np.dot(yq.astype(np.float64), yq.astype(np.float64))))
    gamma = d * _F32_EPS / (1.0 - d * _F32_EPS) + 1e-12  # eps = 2u: twice the textbook bound
    out = np.empty(k, dtype=np.float64)
    for start in range(0, k, block):
        part = slice(start, start + block)
        ny = ynorms[part]
        s = coords[part] @ yq  # float32
        s = s.astype(np.float64)
        s *= -2.0
        s += np.square(ny)
        s += nyq * nyq
        s -= gamma * np.square(ny + nyq)
        np.maximum(s, 0.0, out=s)
        s += np.square(residuals[part] - rq)
        np.sqrt(s, out=s)
        s -= tau * (nq + norms[part])
        np.maximum(s, 0.0, out=s)
        out[part] = s * s
    return out


def kd_order(coords: np.ndarray, leaf: int = LEAF_ROWS) -> np.ndarray:
    """An ordering of the rows in which near rows are adjacent: recursive median split on the
    widest coordinate until a part has at most ``leaf`` rows. Leaves are whole multiples of
    ``leaf`` rows (the split is at a multiple of it), so leaves map onto row groups."""
    coords = np.asarray(coords, dtype=np.float32)
    order = np.arange(coords.shape[0])
    out: list[np.ndarray] = []
    stack = [order]
    while stack:
        rows = stack.pop()
        if rows.size <= leaf:
            out.append(rows)
            continue
        sub = coords[rows]
        axis = int(np.argmax(sub.max(axis=0) - sub.min(axis=0)))
        half = max(leaf, (rows.size // 2) // leaf * leaf)
        part = np.argpartition(sub[:, axis], half - 1)
        stack.append(rows[part[half:]])
        stack.append(rows[part[:half]])
    return np.concatenate(out) if out else order


@dataclass(frozen=True)
class SearchResult:
    """The exact top-k, sorted by variance (ties by position), with the certificate."""

    positions: np.ndarray
    var: np.ndarray
    se_var: np.ndarray
    n_reranked: int
    next_bound: float  # smallest LB / N not re-ranked (inf when all were); above the k-th variance


def search(
    bounds_sq: np.ndarray,
    allowed: np.ndarray,
    fetch: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    query_clipped: np.ndarray,
    k: int,
    first_batch: int = 16,
    prefix: int = 4096,
    max_batch: int = 1 << 20,
    group_of: np.ndarray | None = None,
) -> SearchResult:
    """Exact k nearest rows to ``query_clipped`` among ``allowed`` (boolean mask).

    ``bounds_sq`` are lower bounds on squared row-centred distances; ``fetch(positions)`` returns
    (positions, clipped rows) for at least the requested positions (it may return more: the
    rest of their row groups, which are re-ranked for free). Memory: one batch of rows. Only the
    ``prefix`` smallest bounds are sorted at first (more when the search goes past them). Batches
    double from ``first_batch`` up to ``max_batch`` candidates (at least k). With ``group_of`` (a
    row-group label per row) a batch counts row groups instead: candidates are taken in order
    while they fall in at most ``batch`` groups, starting from one and doubling until k rows are
    ranked, then one group at a time (a group is read only while its best bound is below the
    k-th distance found), so a query whose neighbours share a group reads that group only."""
    n = query_clipped.shape[-1]
    lb = np.where(allowed, bounds_sq / n, np.inf)
    n_allowed = int(np.count_nonzero(allowed))
    k = min(k, n_allowed)
    empty = np.empty(0)
    if k == 0:
        return SearchResult(empty.astype(np.int64), empty, empty, 0, float("inf"))
    q = np.asarray(query_clipped, dtype=np.float64)
    done = np.zeros(lb.shape[0], dtype=bool)
    best_pos = np.empty(0, dtype=np.int64)
    best_var = empty
    best_se = empty
    order = _ordered_prefix(lb, min(n_allowed, prefix), n_allowed)
    cursor = 0
    batch = 1 if group_of is not None else max(min(first_batch, max_batch), k)
    n_reranked = 0
    pruned_bound = float("inf")
    while True:
        while True:
            if cursor < order.size and done[order[cursor]]:  # skip the rows fetched with earlier groups
                ahead = np.flatnonzero(~done[order[cursor:]])
                cursor = cursor + int(ahead[0]) if ahead.size else order.size
            if cursor < order.size or order.size >= n_allowed:
                break
            order = _ordered_prefix(lb, min(n_allowed, 2 * order.size), n_allowed)
        if cursor >= order.size:
            next_lb = float("inf")
            break
        next_lb = float(lb[order[cursor]])
        if best_var.size >= k and best_var[k - 1] < next_lb:
            break
        if cursor + batch > order.size and order.size < n_allowed:
            order = _ordered_prefix(lb, min(n_allowed, max(2 * order.size, cursor + batch)), n_allowed)
        if group_of is None:
            want = order[cursor : cursor + batch]
            want = want[~done[want]]
        else:
            want = order[cursor : cursor + batch * GROUP_WINDOW]
            want = want[~done[want]]
            _, first = np.unique(group_of[want], return_index=True)
            if first.size > batch:
                want = want[: np.sort(first)[batch]]
        positions, rows = fetch(want)
        keep = allowed[positions] & ~done[positions]
        positions, rows = positions[keep], rows[keep]
        done[positions] = True
        done[want] = True  # an allowed row the fetch did not return is an error below
        # Re-rank the fetched rows in increasing bound, a chunk at a time; rows whose bound is
        # above the k-th exact distance found can never enter (it only decreases): pruned.
        by_bound = np.argsort(lb[positions], kind="stable")
        for start in range(0, by_bound.size, RERANK_CHUNK):
            chunk = by_bound[start : start + RERANK_CHUNK]
            first = float(lb[positions[chunk[0]]])
            if best_var.size >= k and best_var[k - 1] < first:
                pruned_bound = min(pruned_bound, first)
                break
            var, se = variance_with_se(rows[chunk] - q)  # float32 - float64: float64
            n_reranked += chunk.size
            best_pos = np.concatenate([best_pos, positions[chunk]])
            best_var = np.concatenate([best_var, var])
            best_se = np.concatenate([best_se, se])
            top = np.lexsort((best_pos, best_var))[:k]
            best_pos, best_var, best_se = best_pos[top], best_var[top], best_se[top]
        missing = np.setdiff1d(want, positions)
        if missing.size:
            raise ValueError(f"fetch did not return rows {missing[:5].tolist()}")
        if group_of is None:
            batch = max(k, min(2 * batch, max_batch))
        else:  # doubling until k rows are ranked, then one group at a time: each may end the search
            batch = 1 if best_var.size >= k else min(2 * batch, max_batch)
    return SearchResult(best_pos, best_var, best_se, n_reranked, min(next_lb, pruned_bound))


def _ordered_prefix(lb: np.ndarray, m: int, n_allowed: int) -> np.ndarray:
    """The positions of the m smallest values of ``lb`` in increasing order (ties by position);
    a partition first, so a query rarely sorts all K bounds."""
    if m >= n_allowed:
        return np.lexsort((np.arange(lb.size), lb))[:n_allowed]
    part = np.argpartition(lb, m - 1)[:m]
    cut = lb[part].max()
    part = np.flatnonzero(lb <= cut)  # keep every tie at the cut, so the prefix is exact
    return part[np.lexsort((part, lb[part]))]


def brute_force(clipped: np.ndarray, query_clipped: np.ndarray, k: int, allowed: np.ndarray) -> np.ndarray:
    """Positions of the exact k nearest allowed rows (float64), ties by position (for tests)."""
    var, _ = variance_with_se(np.asarray(clipped, np.float64) - np.asarray(query_clipped, np.float64))
    var = np.where(allowed, var, np.inf)
    return np.lexsort((np.arange(var.size), var))[: min(k, int(allowed.sum()))]
