"""The house holds by structure: the library never reaches into the builders or the CLI, the query
side imports no torch, and a checkout resolves the same modules as the installed package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABOVE_THE_LIBRARY = ("llkl_db.builders", "llkl_db.cli")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, including those inside functions."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_nothing_under_llkl_db_imports_the_builders_or_the_cli():
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / "llkl_db").rglob("*.py"))
        for line, module in _imports(path)
        if module.startswith(ABOVE_THE_LIBRARY) or module in ("torch", "transformers")
    ]
    assert offenders == []


def test_the_check_itself_catches_an_import_inside_a_function(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from llkl_db.builders.models import load_model\n")
    assert (2, "llkl_db.builders.models") in _imports(sample)


def test_a_checkout_resolves_the_same_modules_as_the_install():
    code = (
        "import llkl_db.cli, llkl_db.builders, llkl_db.schema, llkl_db.textsets;"
        "print(llkl_db.__file__, llkl_db.cli.__file__, llkl_db.builders.__file__, llkl_db.schema.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    files = [Path(p) for p in out.stdout.split()]
    assert files == [
        ROOT / "llkl_db" / "__init__.py",
        ROOT / "cli" / "__init__.py",
        ROOT / "builders" / "__init__.py",
        ROOT / "schema" / "__init__.py",
    ]


def test_the_query_side_imports_no_torch():
    code = (
        "import sys, llkl_db; ds = llkl_db.open(); ds.nearest('HuggingFaceTB/SmolLM2-135M-Instruct', k=3);"
        "from llkl_db.cli import app;"
        "print(sorted(m for m in ('torch', 'transformers', 'llkl_db.builders') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
