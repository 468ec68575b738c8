"""The diffusion exponent (arXiv 2505.15353, method.md section 4): pure array math.

For a checkpoint t0 and the next W saved checkpoints, D(Delta) = d(t0, t0 + Delta) is fitted as
log D = c log Delta + b by least squares; c is the exponent (c = 1: ordinary diffusion,
c < 1: subdiffusive) and R^2 says how straight the log-log line is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_WINDOW = 10
MIN_POINTS = 3


@dataclass(frozen=True)
class LogLogFit:
    """log D = c log Delta + b over ``n`` points, with its coefficient of determination."""

    c: float
    b: float
    r2: float
    n: int


def fit_loglog(delta: np.ndarray, d: np.ndarray) -> LogLogFit:
    """Least-squares fit of log d against log delta (points with delta, d <= 0 or non-finite are
    left out); NaN fields when fewer than two points remain or all deltas are equal."""
    delta = np.asarray(delta, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    ok = np.isfinite(delta) & np.isfinite(d) & (delta > 0) & (d > 0)
    n = int(ok.sum())
    if n < 2:
        return LogLogFit(np.nan, np.nan, np.nan, n)
    x, y = np.log(delta[ok]), np.log(d[ok])
    xc = x - x.mean()
    sxx = float(xc @ xc)
    if sxx == 0.0:
        return LogLogFit(np.nan, np.nan, np.nan, n)
    c = float(xc @ (y - y.mean())) / sxx
    b = float(y.mean() - c * x.mean())
    resid = y - (c * x + b)
    yc = y - y.mean()
    ss_tot = float(yc @ yc)
    r2 = 1.0 - float(resid @ resid) / ss_tot if ss_tot > 0 else np.nan
    return LogLogFit(c, b, r2, n)


def window_pairs(n: int, window: int = DEFAULT_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i < j <= i + window, of n checkpoints in step order."""
    if window < 1:
        raise ValueError("window must be at least 1")
    pairs = [(i, j) for i in range(n) for j in range(i + 1, min(n, i + window + 1))]
    out = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return out[:, 0], out[:, 1]


def window_fits(
    steps: np.ndarray, distance: np.ndarray, window: int = DEFAULT_WINDOW, min_points: int = MIN_POINTS
) -> list[tuple[int, LogLogFit]]:
    """The exponent fit from every start t0: ``distance[i, j]`` is d(t_i, t_j) for checkpoints in
    step order (NaN where unknown); each t0 is fitted over its next ``window`` checkpoints (fewer
    at the end of the run), when at least ``min_points`` of them have a distance.

    Returns (index of t0, fit) for every start that has a fit."""
    steps = np.asarray(steps, dtype=np.float64)
    distance = np.asarray(distance, dtype=np.float64)
    out = []
    for i in range(steps.size - 1):
        js = np.arange(i + 1, min(steps.size, i + window + 1))
        fit = fit_loglog(steps[js] - steps[i], distance[i, js])
        if fit.n >= min_points and np.isfinite(fit.c):
            out.append((i, fit))
    return out
