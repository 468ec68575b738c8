"""Ridge regression in its dual (kernel) form, for many more features than samples (N >> K).

With features X (K x N) the ridge solution with an intercept is w = Xc^T (Gc + alpha I)^-1 yc,
Gc the Gram matrix of the centred training rows. One eigendecomposition of Gc serves every
alpha, and the Gram matrix of all rows is computed once, so grouped cross-validation with an
inner search over alpha costs a few K x K eigendecompositions, never an N-sized solve.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .folds import group_folds

DEFAULT_ALPHAS = tuple(10.0 ** np.arange(-4.0, 3.01, 0.5))  # relative to the mean eigenvalue


def centred_blocks(gram: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gram blocks (train x train, test x train) after centring the features on the training mean."""
    g_tt = gram[np.ix_(train, train)]
    g_st = gram[np.ix_(test, train)]
    col = g_tt.mean(axis=0)
    total = col.mean()
    gc_tt = g_tt - col[None, :] - col[:, None] + total
    gc_st = g_st - g_st.mean(axis=1, keepdims=True) - col[None, :] + total
    return gc_tt, gc_st


class KernelRidge:
    """Ridge fitted on a training Gram block; predicts for several alphas at once."""

    def __init__(self, gc_train: np.ndarray, y: np.ndarray) -> None:
        self.eigval, self.eigvec = np.linalg.eigh(gc_train)
        self.eigval = np.clip(self.eigval, 0.0, None)
        self.y_mean = float(y.mean())
        self.proj = self.eigvec.T @ (y - self.y_mean)
        self.scale = float(self.eigval.mean()) or 1.0

    def predict(self, gc_cross: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
        """Predictions (len(alphas) x n_test); alphas are relative to the mean eigenvalue."""
        out = np.empty((len(alphas), gc_cross.shape[0]))
        left = gc_cross @ self.eigvec
        for i, a in enumerate(alphas):
            out[i] = left @ (self.proj / (self.eigval + a * self.scale)) + self.y_mean
        return out


def best_alpha(gram: np.ndarray, y: np.ndarray, groups: np.ndarray, train: np.ndarray, alphas, n_folds: int) -> float:
    """The alpha with the least squared error in grouped CV inside ``train``."""
    if len(np.unique(groups[train])) < 2:
        return float(alphas[len(alphas) // 2])
    errors = np.zeros(len(alphas))
    for inner_test in group_folds(groups[train], n_folds):
        inner_train = np.setdiff1d(np.arange(train.size), inner_test)
        tr, te = train[inner_train], train[inner_test]
        gc_tt, gc_st = centred_blocks(gram, tr, te)
        pred = KernelRidge(gc_tt, y[tr]).predict(gc_st, alphas)
        errors += ((pred - y[te][None, :]) ** 2).sum(axis=1)
    return float(alphas[int(np.argmin(errors))])


def ridge_cv_predict(
    features: np.ndarray,
    y: np.ndarray,
    groups: Sequence,
    n_folds: int = 10,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    inner_folds: int = 5,
) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold ridge predictions of ``y`` from ``features`` (K x N), folds grouped by
    ``groups``; alpha chosen per outer fold by an inner grouped CV. Returns (predictions, alphas)."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    labels = np.asarray([str(g) for g in groups])
    gram = x @ x.T
    pred = np.empty_like(y)
    chosen = []
    for test in group_folds(labels, n_folds):
        train = np.setdiff1d(np.arange(y.size), test)
        alpha = best_alpha(gram, y, labels, train, alphas, inner_folds)
        gc_tt, gc_st = centred_blocks(gram, train, test)
        pred[test] = KernelRidge(gc_tt, y[train]).predict(gc_st, [alpha])[0]
        chosen.append(alpha)
    return pred, chosen
