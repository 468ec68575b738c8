"""llkl-db: language models compared as probability distributions, by log-likelihood vectors.

>>> import llkl_db
>>> ds = llkl_db.open()                     # the dataset embedded in the package
>>> ds.nearest("HuggingFaceTB/SmolLM2-135M-Instruct", k=5).table
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from llkl_db.errors import LlklError, UnknownEntryError

# pyproject.toml installs the top-level folders cli/, builders/ and schema/ as llkl_db.cli,
# llkl_db.builders and llkl_db.schema. In a checkout they sit beside this folder: adding the
# checkout root to the package path makes `python -m pytest` or `import llkl_db.cli` from the
# repository root resolve the same modules as the installed package.
_CHECKOUT = Path(__file__).resolve().parent.parent
if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "cli" / "__init__.py").is_file():
    __path__.append(str(_CHECKOUT))  # noqa: F821 - set by the import system

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
