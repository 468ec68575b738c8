"""llkl-db: language models compared as probability distributions, by log-likelihood vectors.

>>> import llkl_db
>>> ds = llkl_db.open()                     # the dataset embedded in the package
>>> ds.nearest("HuggingFaceTB/SmolLM2-135M-Instruct", k=5).table
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llkl_db.errors import LlklError, UnknownEntryError

__version__ = "0.1.0"
__all__ = ["Dataset", "LlklError", "UnknownEntryError", "open", "__version__"]

if TYPE_CHECKING:
    from llkl_db.dataset import Dataset, open  # noqa: A004


def __getattr__(name: str):
    # numpy and polars load on first use, so that `llkl-db --help` stays instant.
    if name in ("open", "Dataset"):
        from llkl_db import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'llkl_db' has no attribute {name!r}")
