"""Importers of vectors published elsewhere (the 2025 paper's pickles) into schema v1."""

from .modelmap import ImportSummary, import_modelmap
from .safe_pickle import load_pickle

__all__ = ["ImportSummary", "import_modelmap", "load_pickle"]
