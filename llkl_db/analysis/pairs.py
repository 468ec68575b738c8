"""KL for arbitrary pairs of rows, exactly in float64, chunk by chunk (pure array math)."""

from __future__ import annotations

import numpy as np

from llkl_db import math as llmath

_CHUNK_ELEMENTS = 4_000_000


def kl_pairs(clipped: np.ndarray, a: np.ndarray, b: np.ndarray, mean_bytes: float) -> tuple[np.ndarray, np.ndarray]:
    """KL(row a_k, row b_k) in bits/byte and its standard error, for index arrays ``a``, ``b``."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    kl = np.empty(a.size)
    se = np.empty(a.size)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, clipped.shape[1]))
    for start in range(0, a.size, chunk):
        sl = slice(start, start + chunk)
        est = llmath.pair_kl(clipped[a[sl]], clipped[b[sl]], mean_bytes)
        kl[sl] = est.kl_bpb
        se[sl] = est.se_bpb
    return kl, se
