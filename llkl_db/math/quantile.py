"""Exact percentiles of more values than memory holds: two passes of radix histograms.

Float32 values map to uint32 keys in the same order; a first pass counts the top 16 bits of
every key, a second counts the low 16 bits of the keys in the (at most two) bins that hold the
order statistics wanted, which fixes them exactly. Memory: two arrays of 65,536 counts. The
interpolation between the two order statistics is numpy's ``percentile`` (method 'linear', a
Python float percentile of a float32 array), so the value equals ``np.percentile`` of all values.
"""

from __future__ import annotations

import math

import numpy as np

_BINS = 1 << 16
_CHUNK = 1 << 20  # values keyed at once: a few MB of temporaries, whatever the block


def sortable_keys(values: np.ndarray) -> np.ndarray:
    """uint32 keys that sort like the float32 ``values`` (no NaN)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).reshape(-1).view(np.uint32)
    return np.where(bits >> 31 == 1, ~bits, bits | np.uint32(0x80000000))


def _keyed(values: np.ndarray):
    """The keys of ``values`` (any shape), _CHUNK at a time."""
    flat = np.ravel(values)
    for start in range(0, flat.size, _CHUNK):
        yield sortable_keys(flat[start : start + _CHUNK])


def _value_of(key: int) -> np.float32:
    bits = key & 0x7FFFFFFF if key >> 31 else ~key & 0xFFFFFFFF
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]


class StreamingPercentile:
    """``np.percentile(all values, percentile)`` over float32 blocks fed in two passes:
    :meth:`add_coarse` every block, then :meth:`add_fine` every block, then :meth:`value`."""

    def __init__(self, percentile: float) -> None:
        self.percentile = float(percentile)
        self.count = 0
        self._coarse = np.zeros(_BINS, dtype=np.int64)
        self._fine: dict[int, np.ndarray] = {}

    def add_coarse(self, values: np.ndarray) -> None:
        for keys in _keyed(values):
            self.count += keys.size
            self._coarse += np.bincount(keys >> 16, minlength=_BINS)

    def _ranks(self) -> tuple[int, int, float]:
        """The two order statistics numpy interpolates between, and the weight of the second."""
        n = self.count
        if n == 0:
            raise ValueError("cannot take a percentile of no values")
        q = np.true_divide(self.percentile, 100)
        virtual = n * q + (1 + q * (1 - 1 - 1)) - 1  # numpy's linear method (alpha = beta = 1)
        if virtual >= n - 1:
            return n - 1, n - 1, 0.0
        if virtual < 0:
            return 0, 0, 0.0
        lower = math.floor(virtual)
        return lower, lower + 1, float(virtual - lower)

    def _bins(self) -> dict[int, int]:
        """For each rank wanted: (top bin, rank within it)."""
        cumulative = np.cumsum(self._coarse)
        out = {}
        for rank in set(self._ranks()[:2]):
            b = int(np.searchsorted(cumulative, rank, side="right"))
            out[rank] = (b, rank - (int(cumulative[b - 1]) if b else 0))
        return out

    def add_fine(self, values: np.ndarray) -> None:
        bins = {b for b, _ in self._bins().values()}
        for b in bins:
            self._fine.setdefault(b, np.zeros(_BINS, dtype=np.int64))
        for keys in _keyed(values):
            top = keys >> 16
            for b in bins:
                self._fine[b] += np.bincount(keys[top == b] & 0xFFFF, minlength=_BINS)

    def value(self) -> float:
        """The percentile, as ``float(np.percentile(values, percentile))`` gives it."""
        lower, upper, gamma = self._ranks()
        found = {}
        for rank, (b, within) in self._bins().items():
            low = int(np.searchsorted(np.cumsum(self._fine[b]), within, side="right"))
            found[rank] = _value_of((b << 16) | low)
        a, b = found[lower], found[upper]
        diff = b - a
        result = b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma
        return float(result)
