"""Predicting benchmark scores from log-likelihood vectors (arXiv 2502.16173, section 5)."""

from .folds import group_folds
from .predict import PredictResult, predict_score
from .ridge import KernelRidge, ridge_cv_predict

__all__ = ["KernelRidge", "PredictResult", "group_folds", "predict_score", "ridge_cv_predict"]
