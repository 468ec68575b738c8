"""The application itself: --version, shell completion, and the build progress bar's estimate."""

from __future__ import annotations

import shlex
import subprocess
import sys
from types import SimpleNamespace

from typer.testing import CliRunner

import llkl_db
from llkl_db.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"llkl-db {llkl_db.__version__}"
    done = subprocess.run([sys.executable, "-m", "llkl_db.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"llkl-db {llkl_db.__version__}"


def test_shell_completion_is_on():
    help_text = runner.invoke(app, ["--help"]).output
    assert "--install-completion" in help_text and "--show-completion" in help_text
    # typer finds the shell among the process's parents: run it under bash (two commands, so bash does
    # not exec into it), whatever launched pytest
    done = subprocess.run(
        ["bash", "-c", f"{shlex.quote(sys.executable)} -m llkl_db.cli --show-completion; exit $?"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "complete" in done.stdout and "COMP_WORDS" in done.stdout


def test_progress_estimates_time_left_from_the_first_slow_batch():
    """On a slow CPU one batch can take longer than rich's 30-second speed window: the estimate
    comes from the whole run, so it shows after the first batch."""
    from llkl_db.builders.scoring.progress import RateColumn, TimeLeftColumn

    first_batch = SimpleNamespace(completed=1_000, total=10_000, elapsed=90.0, finished=False)
    assert TimeLeftColumn().render(first_batch).plain == "0:13:30"
    assert RateColumn().render(first_batch).plain == "11 tok/s"
    before = SimpleNamespace(completed=0, total=10_000, elapsed=5.0, finished=False)
    assert TimeLeftColumn().render(before).plain == "-:--:--" and RateColumn().render(before).plain == ""


class _Dist:
    def __init__(self, direct_url: str | None) -> None:
        self.direct_url = direct_url

    def read_text(self, name: str) -> str | None:
        return self.direct_url if name == "direct_url.json" else None


def test_install_hints_work_from_a_clone(monkeypatch):
    import sys as _sys

    import pytest

    from llkl_db import install
    from llkl_db.errors import LlklError

    monkeypatch.setattr(
        install.metadata,
        "distribution",
        lambda name: _Dist('{"url": "file:///home/me/src/llkl%20db", "dir_info": {"editable": true}}'),
    )
    assert install.install_hint("plot") == "pip install -e '/home/me/src/llkl db[plot]'"
    monkeypatch.setattr(install.metadata, "distribution", lambda name: _Dist(None))  # from an index or a wheel
    assert install.install_hint("plot") == (
        "pip install 'llkl-db[plot]' (from a clone of llkl-db: pip install -e '.[plot]')"
    )
    from llkl_db.analysis.render import pyplot

    monkeypatch.setitem(_sys.modules, "matplotlib", None)
    with pytest.raises(LlklError, match=r"plots need matplotlib: pip install 'llkl-db\[plot\]' \(from a clone"):
        pyplot()
