"""Build the Python API reference of llkl-db from its docstrings (pdoc) into a folder.

    pip install -e '.[test]'        # pdoc is in the test extra
    python docs/build_api.py OUT    # then open OUT/index.html

The test suite runs it (tests/test_api_docs.py), so the reference cannot rot.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The library, not the CLI or the builders (they need torch): the modules users import.
MODULES = [
    "llkl_db",
    "llkl_db.dataset",
    "llkl_db.analysis",
    "llkl_db.predict",
    "llkl_db.math",
    "llkl_db.io",
    "llkl_db.scale",
    "llkl_db.where",
    "llkl_db.resolve",
    "llkl_db.errors",
    "llkl_db.escape",
    "llkl_db.card",
    "llkl_db.merge",
    "llkl_db.variants",
    "llkl_db.identifiers",
    "llkl_db.validation",
    "llkl_db.publish",
    "llkl_db.importers",
    "llkl_db.textsets",
]


def build(out: Path) -> Path:
    """Write the HTML reference into ``out``; returns ``out``."""
    import pdoc

    sys.path.insert(0, str(ROOT))
    import llkl_db
    from llkl_db import dataset

    # llkl_db resolves Dataset and open lazily (module __getattr__); pdoc needs them as attributes.
    llkl_db.Dataset, llkl_db.open = dataset.Dataset, dataset.open
    pdoc.render.configure(docformat="restructuredtext", footer_text=f"llkl-db {llkl_db.__version__}")
    pdoc.pdoc(*MODULES, output_directory=Path(out))
    return Path(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python docs/build_api.py OUT")
    print(build(Path(sys.argv[1])))
