"""Clipping and centering of a K x N log-likelihood matrix (method.md, section 2, steps 1-2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_CLIP_PERCENTILE = 2.0


def clip_threshold(loglik: np.ndarray, percentile: float = DEFAULT_CLIP_PERCENTILE) -> float:
    """The clip threshold c: the given percentile of all entries of the matrix."""
    if loglik.size == 0:
        raise ValueError("cannot take a clip threshold of an empty matrix")
    return float(np.percentile(loglik, percentile))


def clip(loglik: np.ndarray, threshold: float | None) -> np.ndarray:
    """max(L, c) as float32; a None threshold leaves values as they are."""
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


def prepare(loglik: np.ndarray, threshold: float | None) -> Prepared:
    """Clip, double-centre and cache the squared norms of a K x N matrix."""
    clipped = clip(loglik, threshold)
    row_mean = clipped.mean(axis=1, dtype=np.float64)
    col_mean = (clipped.mean(axis=0, dtype=np.float64) - row_mean.mean())
    centered = clipped - row_mean[:, None].astype(np.float32)
    centered -= col_mean.astype(np.float32)
    sq_norms = np.einsum("ij,ij->i", centered, centered, dtype=np.float64)
    return Prepared(clipped=clipped, centered=centered, sq_norms=sq_norms, col_mean=col_mean)
