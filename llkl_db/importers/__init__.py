"""Importers of vectors published elsewhere (the 2025 paper's pickles, the kl-scale release) into schema v1."""

from .klscale import KlScaleSummary, import_klscale
from .modelmap import ImportSummary, import_modelmap
from .safe_pickle import load_pickle

__all__ = ["ImportSummary", "KlScaleSummary", "import_klscale", "import_modelmap", "load_pickle"]
