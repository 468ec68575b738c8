"""Clipping and centering of a K x N log-likelihood matrix (method.md, section 2, steps 1-2).

:func:`prepare` runs in two fused, parallel numba passes when numba is installed (the ``fast``
extra) and the matrix is large; otherwise in numpy. Both give the same result (the numba pass
subtracts the means in float64 before rounding, so it is if anything more precise).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import numpy as np

DEFAULT_CLIP_PERCENTILE = 2.0
# Below this many entries numpy is fast enough and numba's import (~0.3 s) would dominate.
NUMBA_MIN_SIZE = 10_000_000
ENGINES = ("auto", "numpy", "numba")
_NUMPY_BLOCK_ELEMENTS = 262_144  # 2 MB of float64 per block: stays in cache


def clip_threshold(loglik: np.ndarray, percentile: float = DEFAULT_CLIP_PERCENTILE) -> float:
    """The clip threshold c: the given percentile of all entries of the matrix."""
    if loglik.size == 0:
        raise ValueError("cannot take a clip threshold of an empty matrix")
    return float(np.percentile(loglik, percentile))


def group_thresholds(
    loglik: np.ndarray,
    groups: np.ndarray,
    recorded: dict[int, float | None],
    percentile: float = DEFAULT_CLIP_PERCENTILE,
) -> np.ndarray:
    """One clip threshold per row: each group's recorded threshold, else the percentile of that
    group's values. ``groups`` labels the rows (e.g. 0 = model outputs, 1 = logit-lens layers)."""
    out = np.empty(loglik.shape[0], dtype=np.float64)
    for group in np.unique(groups):
        rows = groups == group
        value = recorded.get(int(group))
        out[rows] = clip_threshold(loglik[rows], percentile) if value is None else value
    return out


def clip(loglik: np.ndarray, threshold: float | None) -> np.ndarray:
    """max(L, c) as a new float32 array; a None threshold leaves values as they are."""
    out = np.asarray(loglik, dtype=np.float32)
    if threshold is None:
        return out.copy()
    return np.maximum(out, np.float32(threshold))


def center_rows(loglik: np.ndarray) -> np.ndarray:
    """Subtract each row's mean: removes per-model offsets, which KL does not see."""
    x = np.asarray(loglik, dtype=np.float64)
    return x - x.mean(axis=-1, keepdims=True)


def double_center(loglik: np.ndarray) -> np.ndarray:
    """Q = L - row mean - column mean + grand mean, in float64."""
    x = center_rows(loglik)
    return x - x.mean(axis=0, keepdims=True)


@dataclass(frozen=True)
class Prepared:
    """A clipped matrix ready for fast distances.

    ``clipped`` is max(L, c) in float32 (exact re-ranking starts from it); ``centered`` is its
    double-centred float32 copy, whose squared row differences equal those of the row-centred
    vectors while keeping the numbers small (precision of the Gram products); ``sq_norms`` are
    the float64 squared norms of the rows of ``centered``; ``col_mean`` places new vectors.
    """

    clipped: np.ndarray
    centered: np.ndarray
    sq_norms: np.ndarray
    col_mean: np.ndarray

    @property
    def n_texts(self) -> int:
        return self.clipped.shape[1]

    def center_vector(self, vector: np.ndarray) -> np.ndarray:
        """Double-centre an outside vector (already clipped) like the rows of ``centered``."""
        v = np.asarray(vector, dtype=np.float64)
        return (v - v.mean() - self.col_mean).astype(np.float32)


def prepare(loglik: np.ndarray, threshold: float | None, engine: str = "auto") -> Prepared:
    """Clip, double-centre and cache the squared norms of a K x N matrix.

    ``engine`` is 'numpy', 'numba' (an ImportError without numba) or 'auto': numba for
    matrices of at least ``NUMBA_MIN_SIZE`` entries when it is installed (``LLKL_DB_NUMBA=0``
    turns it off), numpy otherwise.
    """
    x = np.asarray(loglik)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"expected a non-empty K x N matrix, got shape {x.shape}")
    if _use_numba(x, engine):
        return _prepare_numba(x, threshold, copy=True)
    return prepare_clipped(clip(x, threshold), engine="numpy")


def prepare_clipped(clipped: np.ndarray, engine: str = "auto") -> Prepared:
    """Like :func:`prepare` for a matrix that is already clipped float32: it is kept, not copied."""
    clipped = np.ascontiguousarray(clipped, dtype=np.float32)
    if clipped.ndim != 2 or clipped.shape[0] == 0 or clipped.shape[1] == 0:
        raise ValueError(f"expected a non-empty K x N matrix, got shape {clipped.shape}")
    if _use_numba(clipped, engine):
        return _prepare_numba(clipped, None, copy=False)
    k, n = clipped.shape
    row_mean = clipped.mean(axis=1, dtype=np.float64)
    col_mean = clipped.mean(axis=0, dtype=np.float64) - row_mean.mean()
    centered = np.empty_like(clipped)
    sq_norms = np.empty(k, dtype=np.float64)
    # The means are subtracted in float64, a few rows at a time, and rounded once: a float32
    # subtraction would leave errors of eps * |L| (~3e-5 nats), large next to small deviations.
    rows = max(1, _NUMPY_BLOCK_ELEMENTS // n)
    buffer = np.empty((min(rows, k), n), dtype=np.float64)
    for start in range(0, k, rows):
        stop = min(start + rows, k)
        block = buffer[: stop - start]
        block[...] = clipped[start:stop]
        block -= row_mean[start:stop, None]
        block -= col_mean
        out = centered[start:stop]
        out[...] = block
        block[...] = out  # the rounded values, so that the norms match the Gram products
        sq_norms[start:stop] = np.einsum("ij,ij->i", block, block)
    return Prepared(clipped=clipped, centered=centered, sq_norms=sq_norms, col_mean=col_mean)


def numba_available() -> bool:
    """Whether numba can be imported (the optional ``fast`` extra)."""
    try:
        _kernels()
    except ImportError:
        return False
    return True


def _use_numba(x: np.ndarray, engine: str) -> bool:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "numpy":
        return False
    if engine == "numba":
        _kernels()  # raises ImportError when numba is missing
        return True
    if x.size < NUMBA_MIN_SIZE or os.environ.get("LLKL_DB_NUMBA", "1") == "0":
        return False
    return numba_available()


def _prepare_numba(x: np.ndarray, threshold: float | None, copy: bool) -> Prepared:
    clip_sums, center = _kernels()
    x = np.ascontiguousarray(x, dtype=np.float32)
    k, n = x.shape
    clipped = np.empty_like(x) if copy else x
    c = -np.inf if threshold is None else float(np.float32(threshold))
    n_chunks = min(k, 64)
    row_sum = np.empty(k, dtype=np.float64)
    col_partial = np.zeros((n_chunks, n), dtype=np.float64)
    clip_sums(x, c, clipped, row_sum, col_partial, copy)
    row_mean = row_sum / n
    col_mean = col_partial.sum(axis=0) / k - row_mean.mean()
    centered = np.empty_like(clipped)
    sq_norms = np.empty(k, dtype=np.float64)
    center(clipped, row_mean, col_mean, centered, sq_norms)
    return Prepared(clipped=clipped, centered=centered, sq_norms=sq_norms, col_mean=col_mean)


@cache
def _kernels():
    """Compile (or load from numba's cache) the two fused passes of :func:`prepare`."""
    import numba

    @numba.njit(parallel=True, cache=True, fastmath={"reassoc", "nsz", "arcp", "contract"})
    def clip_sums(x, c, out, row_sum, col_partial, write):  # pragma: no cover - compiled
        k, n = x.shape
        n_chunks = col_partial.shape[0]
        for chunk in numba.prange(n_chunks):
            start = chunk * k // n_chunks
            stop = (chunk + 1) * k // n_chunks
            acc = col_partial[chunk]
            for i in range(start, stop):
                s = 0.0
                for j in range(n):
                    v = x[i, j]
                    if v < c:
                        v = np.float32(c)
                    if write:
                        out[i, j] = v
                    s += v
                    acc[j] += v
                row_sum[i] = s

    @numba.njit(parallel=True, cache=True, fastmath={"reassoc", "nsz", "arcp", "contract"})
    def center(clipped, row_mean, col_mean, out, sq_norms):  # pragma: no cover - compiled
        k, n = clipped.shape
        for i in numba.prange(k):
            r = row_mean[i]
            s = 0.0
            for j in range(n):
                v = np.float32(np.float64(clipped[i, j]) - r - col_mean[j])
                out[i, j] = v
                s += np.float64(v) * np.float64(v)
            sq_norms[i] = s

    return clip_sums, center
