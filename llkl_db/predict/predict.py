"""``llkl-db predict SCORE``: how well the log-likelihood vectors predict a benchmark score.

One entry per model (its output at its final revision in reference precision), double-centred
(llkl_db.math.double_center), ridge regression with cross-validation grouped by model type as
in arXiv 2502.16173; the answer is the correlation between out-of-fold predictions and scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from llkl_db.errors import LlklError


@dataclass(frozen=True)
class PredictResult:
    """Cross-validated prediction of one score."""

    score: str
    n_models: int
    n_groups: int
    n_folds: int
    pearson_r: float
    spearman_r: float
    rmse: float
    baseline_rmse: float
    alphas: list[float]
    predictions: pl.DataFrame
    # with ``model=``: the predicted score of that model from a fit on all the others
    model: str | None = None
    entry_id: str | None = None
    predicted: float | None = None
    actual: float | None = None  # its score in the table, left out of the fit, when it has one
    alpha: float | None = None  # the penalty of that final fit
    warnings: tuple[str, ...] = ()

    def to_dict(self, with_predictions: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "predictions"}
        out["warnings"] = list(self.warnings)
        if with_predictions:
            out["predictions"] = self.predictions.to_dicts()
        return out


def _rank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(x.size)
    ranks[order] = np.arange(x.size)
    # average ties
    values, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def available_scores(ds) -> list[str]:
    """Names of the scores in the dataset's model_scores table."""
    from llkl_db.io.scores import read_scores

    return sorted(read_scores(ds.root)["score"].unique().to_list())


def edge_warning(chosen: list[float], alphas=None) -> str | None:
    """A warning when a chosen ridge penalty is the smallest or largest of the grid."""
    from .ridge import DEFAULT_ALPHAS

    grid = list(alphas or DEFAULT_ALPHAS)
    low = sum(a == grid[0] for a in chosen)
    high = sum(a == grid[-1] for a in chosen)
    if not (low or high):
        return None
    side = "smallest" if low >= high else "largest"
    return (
        f"the ridge penalty chosen in {low + high} of {len(chosen)} fits is the {side} of its grid "
        f"({grid[0]:g} .. {grid[-1]:g}, relative to the mean eigenvalue): the best one may lie beyond it, "
        "so the prediction may be under- or over-regularised"
    )


def predict_score(ds, score: str, n_folds: int = 10, min_models: int = 10, model: str | None = None) -> PredictResult:
    """Predict ``score`` (a name in the model_scores table) for the models of the view ``ds``:
    out-of-fold predictions grouped by model type, their correlation and RMSE. With ``model``
    (any model or entry of the dataset, e.g. one just placed), also that model's predicted score
    from a ridge fit on every other model with the score (its own score, if any, left out), whose
    error is the cross-validated RMSE."""
    from llkl_db.io.scores import read_scores
    from llkl_db.math import double_center

    table = read_scores(ds.root)
    if table.height == 0:
        raise LlklError(f"{ds.root}: no tables/model_scores.parquet; import scores first (llkl-db import modelmap)")
    values = table.filter((pl.col("score") == score) & pl.col("value").is_not_null() & pl.col("value").is_finite())
    if values.height == 0:
        names = ", ".join(available_scores(ds)) or "none"
        raise LlklError(f"score {score!r}: not in the dataset's model_scores table (scores: {names})")
    view_entries = ds.entries
    types = dict(zip(view_entries["entry_id"].to_list(), view_entries["model_type"].to_list(), strict=True))
    present = set(view_entries["model_id"].to_list())
    target = ds.resolve(model) if model is not None else None
    target_model = ds.entry(target.entry_id)["model_id"] if target is not None else None
    actual = None
    vectors, ids, ys, groups = [], [], [], []
    for model_id, value in values.select("model_id", "value").iter_rows():
        if model_id == target_model:
            actual = float(value)  # never trained on
            continue
        if model_id not in present:
            continue
        entry = ds.resolve(model_id).entry_id
        if entry not in types:
            continue
        vectors.append(ds.vector(entry))
        ids.append(model_id)
        ys.append(float(value))
        groups.append(types[entry] if types[entry] is not None else f"unknown:{model_id}")
    if len(ids) < min_models:
        raise LlklError(
            f"score {score!r}: only {len(ids)} model(s) have both a vector and the score (need {min_models})"
        )
    if len(set(groups)) < 2:
        raise LlklError(f"score {score!r}: grouped cross-validation needs models of at least 2 model types")
    from .ridge import DEFAULT_ALPHAS, KernelRidge, best_alpha, centred_blocks, ridge_cv_predict

    if target is not None:
        vectors.append(ds.vector(target.entry_id))
    # Ridge centres the features on its training rows, so the target row in the column means
    # changes no prediction.
    features = double_center(np.stack(vectors))
    train_features = features[: len(ids)]
    y = np.asarray(ys)
    pred, alphas = ridge_cv_predict(train_features, y, groups, n_folds=n_folds)
    folds = min(n_folds, len(set(groups)))
    predicted = alpha = None
    chosen = list(alphas)
    if target is not None:
        gram = features @ features.T
        train = np.arange(len(ids))
        alpha = best_alpha(gram, y, np.asarray([str(g) for g in groups]), train, DEFAULT_ALPHAS, n_folds)
        gc_tt, gc_st = centred_blocks(gram, train, np.array([len(ids)]))
        predicted = float(KernelRidge(gc_tt, y).predict(gc_st, [alpha])[0][0])
        chosen.append(alpha)
    warning = edge_warning(chosen)
    predictions = pl.DataFrame({"model_id": ids, "model_type": [str(g) for g in groups], "score": y, "predicted": pred})
    return PredictResult(
        score=score,
        n_models=len(ids),
        n_groups=len(set(groups)),
        n_folds=folds,
        pearson_r=_pearson(pred, y),
        spearman_r=_pearson(_rank(pred), _rank(y)),
        rmse=float(np.sqrt(np.mean((pred - y) ** 2))),
        baseline_rmse=float(np.sqrt(np.mean((y - y.mean()) ** 2))),
        alphas=alphas,
        predictions=predictions,
        model=model,
        entry_id=None if target is None else target.entry_id,
        predicted=predicted,
        actual=actual,
        alpha=alpha,
        warnings=(warning,) if warning else (),
    )
