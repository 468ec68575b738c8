"""Never lose a user's files: writers refuse folders that are not theirs, a whole-folder switch
survives a kill at every step, and publish never modifies its source."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from contrib_helpers import good_dataset, good_shard
from typer.testing import CliRunner

import llkl_db
from llkl_db.cli import app
from llkl_db.errors import LlklError
from llkl_db.io import swap
from llkl_db.merge import merge
from llkl_db.publish import publish

runner = CliRunner()
TESTS = Path(__file__).parent


def _tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _leftovers(parent: Path) -> list[str]:
    return sorted(
        p.name
        for p in parent.iterdir()
        if swap.STAGING_TAG in p.name or swap.OLD_TAG in p.name or p.name.endswith(swap.JOURNAL_SUFFIX)
    )


def _one_error_line(result) -> str:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


# --- writers refuse what is not theirs ---------------------------------------------------------
def test_merge_refuses_a_folder_of_someone_elses_files_and_keeps_them(tmp_path):
    shard = good_shard(tmp_path / "shard")
    target = tmp_path / "d"
    target.mkdir()
    (target / "notes.txt").write_text("x")
    line = _one_error_line(runner.invoke(app, ["merge", str(shard), "--out", str(target)]))
    assert "not a llkl-db dataset" in line
    assert _tree(target) == {"notes.txt": hashlib.sha256(b"x").hexdigest()}
    assert _leftovers(tmp_path) == []
    ok = runner.invoke(app, ["merge", str(shard), "--out", str(target), "--overwrite"])
    assert ok.exit_code == 0, ok.output
    assert not (target / "notes.txt").exists() and len(llkl_db.open(target)) == 3


def test_merge_into_the_current_folder_is_refused_when_it_is_not_a_dataset(tmp_path, monkeypatch):
    shard = good_shard(tmp_path / "shard")
    here = tmp_path / "work"
    here.mkdir()
    (here / "keep.md").write_text("mine")
    monkeypatch.chdir(here)
    _one_error_line(runner.invoke(app, ["merge", str(shard), "--out", "."]))
    assert (here / "keep.md").read_text() == "mine" and _leftovers(tmp_path) == []


def test_import_and_texts_refuse_targets_that_are_not_theirs(tmp_path):
    target = tmp_path / "notes"
    target.mkdir()
    (target / "a.txt").write_text("a")
    line = _one_error_line(runner.invoke(app, ["import", "modelmap", str(tmp_path), "--out", str(target)]))
    assert "not a llkl-db dataset" in line and (target / "a.txt").read_text() == "a"
    not_texts = tmp_path / "report.parquet"
    not_texts.write_bytes(b"not parquet at all")
    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text('{"index": 0, "text": "hello world", "pile_set_name": "Pile-CC"}\n')
    line = _one_error_line(runner.invoke(app, ["texts", "import", str(jsonl), "--out", str(not_texts)]))
    assert "is not a text set" in line and not_texts.read_bytes() == b"not parquet at all"


def test_build_refuses_an_output_folder_of_someone_elses_files(tmp_path):
    from llkl_db.builders.build import check_out_dir
    from llkl_db.textsets import load_text_set

    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("chapter 1")
    with pytest.raises(LlklError, match="not a llkl-db dataset or build folder"):
        check_out_dir(out, load_text_set("mini"))
    assert _tree(out) == {"thesis.tex": hashlib.sha256(b"chapter 1").hexdigest()}


def test_publish_to_a_file_is_one_line_and_the_file_stays(tmp_path):
    root = good_dataset(tmp_path / "ds")
    target = tmp_path / "published.txt"
    target.write_text("do not touch")
    line = _one_error_line(runner.invoke(app, ["publish", str(root), "--to", str(target)]))
    assert "not a folder" in line and target.read_text() == "do not touch"
    assert _leftovers(tmp_path) == []


# --- publish never modifies its source ---------------------------------------------------------
def test_publish_leaves_its_source_untouched_when_it_succeeds_and_when_it_is_refused(tmp_path):
    root = good_dataset(tmp_path / "ds", dataset_version="1.0.0")
    before = _tree(root)
    publish(root, to=tmp_path / "pub", tag="v1.2.0")
    assert _tree(root) == before
    assert llkl_db.open(tmp_path / "pub").metadata.dataset_version == "1.2.0"
    with pytest.raises(LlklError, match="not newer"):
        publish(root, to=tmp_path / "pub", tag="v1.1.0")
    assert _tree(root) == before
    assert llkl_db.open(tmp_path / "pub").metadata.dataset_version == "1.2.0"


def test_a_failed_local_publish_leaves_source_and_target_as_they_were(tmp_path, monkeypatch):
    root = good_dataset(tmp_path / "ds", dataset_version="1.0.0")
    publish(root, to=tmp_path / "pub", tag="v1.0.0")
    source_before, target_before = _tree(root), _tree(tmp_path / "pub")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    import importlib

    monkeypatch.setattr(importlib.import_module("llkl_db.publish.publish"), "_assemble", disk_full)
    with pytest.raises(OSError):
        publish(root, to=tmp_path / "pub", tag="v1.1.0")
    assert _tree(root) == source_before and _tree(tmp_path / "pub") == target_before
    assert _leftovers(tmp_path) == []


# --- a switch killed at every step --------------------------------------------------------------
MERGE_SCRIPT = """
import sys
from pathlib import Path
from llkl_db.merge import merge
merge([Path(p) for p in sys.argv[2:]], Path(sys.argv[1]))
"""


def _merge_in_child(target: Path, inputs: list[Path], fault: str | None) -> int:
    env = {**os.environ, swap.FAULT_ENV: fault or ""}
    args = [sys.executable, "-c", MERGE_SCRIPT, str(target), *map(str, inputs)]
    return subprocess.run(args, env=env, cwd=TESTS.parent, capture_output=True, timeout=120).returncode


@pytest.mark.parametrize("step", ["swap:staged", "swap:journal", "swap:aside", "swap:switched", "swap:removed"])
def test_a_merge_killed_at_any_step_leaves_the_old_or_the_new_dataset(tmp_path, step):
    target = good_dataset(tmp_path / "ds", k=4)
    old_ids = set(llkl_db.open(target).entries["entry_id"])
    shard = good_shard(tmp_path / "shard", k=2)
    new_ids = old_ids | {f"new/model-00{i}@main" for i in range(2)}

    assert _merge_in_child(target, [shard], step) == 70  # killed where the hook says
    ids = set(llkl_db.open(target).entries["entry_id"])  # opening finishes or undoes the switch
    assert ids in (old_ids, new_ids), step
    assert _leftovers(tmp_path) == [], step
    if ids == old_ids:  # a rerun completes it: nothing was lost, nothing is smaller
        assert _merge_in_child(target, [shard], None) == 0
        assert set(llkl_db.open(target).entries["entry_id"]) == new_ids


def test_recover_refuses_a_journal_that_names_foreign_folders(tmp_path):
    target = good_dataset(tmp_path / "ds")
    swap.journal_path(target).write_text('{"staging": "../../etc", "old": "x"}')
    with pytest.raises(LlklError, match="not llkl-db's"):
        llkl_db.open(target)


def test_stale_staging_folders_are_cleaned_only_when_they_are_ours_and_old(tmp_path):
    target = good_dataset(tmp_path / "ds")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".ds{swap.STAGING_TAG}{int(dead.stdout)}-abc123"  # its writer has exited
    stale.mkdir()
    live = tmp_path / f".ds{swap.STAGING_TAG}{os.getppid()}-live12"  # a writer that is still running
    live.mkdir()
    foreign = tmp_path / ".ds-my-backup"
    foreign.mkdir()
    merge([good_shard(tmp_path / "shard", k=1)], target)
    assert not stale.exists() and live.exists() and foreign.exists()
