"""Every failure a user can cause or meet is one ``Error:`` line and a non-zero exit, from one
error layer (``llkl_db.cli.errors.handle_errors``): disk full, permissions, out of memory,
network failures, NaN in JSON; genuine bugs are one line too, with a hint to get the traceback."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import polars as pl
import pytest
from helpers import synthetic_loglik, write_dataset
from typer.testing import CliRunner

import llkl_db
from llkl_db.cli import app
from llkl_db.cli.errors import BUG_EXIT_CODE, DEBUG_ENV, describe, handle_errors

runner = CliRunner()


def one_error_line(result, *needles: str) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def no_leftovers(*roots) -> None:
    for root in roots:
        if not os.path.exists(root):
            continue
        left = [
            p
            for p in __import__("pathlib").Path(root).rglob("*")
            if p.name.endswith(".tmp") or ".staging" in p.name or "-staging" in p.name
        ]
        assert not left, left


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[0]) if args else None)


@pytest.fixture
def small(tmp_path):
    return write_dataset(tmp_path / "ds", synthetic_loglik(6, 80))


# --- disk full ------------------------------------------------------------------------------


def test_merge_disk_full_is_one_line_and_leaves_nothing(tmp_path, small, monkeypatch):
    monkeypatch.setattr(os, "replace", disk_full)
    result = runner.invoke(app, ["merge", str(small), "--out", str(tmp_path / "merged")])
    one_error_line(result, "disk full")
    monkeypatch.undo()
    assert not (tmp_path / "merged").exists() or not any((tmp_path / "merged").iterdir())
    no_leftovers(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_publish_disk_full_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    from contrib_helpers import good_dataset

    root = good_dataset(tmp_path / "ds", k=3)
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.setattr(os, "replace", disk_full)
    result = runner.invoke(app, ["publish", str(root), "--to", str(tmp_path / "pub"), "--tag", "v1.0.0"])
    one_error_line(result, "disk full")
    monkeypatch.undo()
    no_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_failure_log_is_never_left_empty_when_the_disk_is_full(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from llkl_db.builders.plan import FAILURES_FILE, record_failure

    job = SimpleNamespace(key="org/m@main")
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        record_failure(tmp_path / "out", job, "first")
    assert not (tmp_path / "out" / FAILURES_FILE).exists()  # not created empty
    monkeypatch.setattr(os, "fsync", real_fsync)
    record_failure(tmp_path / "out", job, "first")
    size = (tmp_path / "out" / FAILURES_FILE).stat().st_size
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        record_failure(tmp_path / "out", job, "second")
    assert (tmp_path / "out" / FAILURES_FILE).stat().st_size == size  # no half line
    lines = (tmp_path / "out" / FAILURES_FILE).read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["reason"] == "first"


def test_build_disk_full_stops_with_one_line(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from tiny_models import save_tiny

    from llkl_db.io.texts import write_texts

    save_tiny(tmp_path / "llama", "llama")
    write_texts(tmp_path / "tiny.parquet", [f"text {i} about foxes" for i in range(6)], ["t"] * 6)
    out = tmp_path / "out"
    monkeypatch.setattr(os, "fsync", disk_full)
    result = runner.invoke(
        app,
        [
            "build",
            str(tmp_path / "llama"),
            "--texts",
            str(tmp_path / "tiny.parquet"),
            "--out",
            str(out),
            "--model-id",
            "tiny/llama",
            "--quiet",
        ],
    )
    one_error_line(result, "disk full")
    monkeypatch.undo()
    no_leftovers(out)
    failures = out / "failures.jsonl"
    assert not failures.exists() or failures.read_text().strip()  # never an empty log


# --- NaN in JSON ----------------------------------------------------------------------------


def test_kl_json_with_nan_is_null_not_a_traceback(small, monkeypatch):
    from llkl_db import math as llmath

    real = llmath.pair_kl

    def nan_kl(a, b, mean_bytes):
        est = real(a, b, mean_bytes)
        return llmath.KLEstimate(float("nan"), float("nan"), float("nan"), float("nan")) if est else est

    monkeypatch.setattr(llmath, "pair_kl", nan_kl)
    result = runner.invoke(app, ["kl", "org/model-000", "org/model-001", "--dataset", str(small), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["kl_bpb"] is None and payload["se_nats"] is None


# --- memory, network, bugs ------------------------------------------------------------------


def _array_memory_error():
    try:
        np.empty(1 << 50, dtype=np.uint8)
    except MemoryError as exc:
        return exc
    raise AssertionError("allocation succeeded")


@pytest.mark.parametrize(
    "make",
    [
        lambda: MemoryError(),
        _array_memory_error,
        lambda: pl.exceptions.ComputeError("memory allocation of 800000000 bytes failed"),
    ],
    ids=["MemoryError", "numpy", "polars"],
)
def test_nearest_out_of_memory_is_one_line(small, monkeypatch, make):
    exc = make()

    def boom(self, *a, **k):
        raise exc

    monkeypatch.setattr(llkl_db.Dataset, "nearest", boom)
    result = runner.invoke(app, ["nearest", "org/model-000", "--dataset", str(small)])
    one_error_line(result, "out of memory")
    assert result.exit_code == 1


def test_network_failure_in_publish_is_one_line(tmp_path, monkeypatch):
    import requests
    from contrib_helpers import good_dataset
    from huggingface_hub import HfApi

    root = good_dataset(tmp_path / "ds", k=3)

    def offline(self, *a, **k):
        raise requests.ConnectionError("Failed to resolve 'huggingface.co'")

    for name in ("list_repo_refs", "repo_info", "create_repo", "upload_folder", "dataset_info"):
        monkeypatch.setattr(HfApi, name, offline)
    result = runner.invoke(app, ["publish", str(root), "--repo", "org/name", "--tag", "v1.0.0"])
    one_error_line(result, "huggingface.co")


@pytest.mark.parametrize(
    "exc, needles",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/x.parquet"), ("/data/x.parquet", "disk full")),
        (PermissionError(errno.EACCES, "Permission denied", "/root/ds"), ("/root/ds", "permission denied")),
        (OSError(errno.EROFS, "Read-only file system", "/ro/ds"), ("/ro/ds", "read-only")),
        (OSError(errno.ENOSPC, "No space left on device"), ("disk full",)),
    ],
)
def test_os_errors_name_the_file_and_the_problem(exc, needles):
    line, code = describe(exc)
    assert code == 1
    for needle in needles:
        assert needle in line


def test_unexpected_exception_is_one_line_with_a_debug_hint(monkeypatch):
    import typer

    @handle_errors
    def buggy():
        raise KeyError("oops\nsecond line")

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(typer.Exit) as excinfo:
        buggy()
    assert excinfo.value.exit_code == BUG_EXIT_CODE
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(KeyError):
        buggy()

    @handle_errors
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()


def test_unexpected_exception_through_the_cli(small, monkeypatch):
    def bug(self, *a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.setattr(llkl_db.Dataset, "nearest", bug)
    result = runner.invoke(app, ["nearest", "org/model-000", "--dataset", str(small)])
    one_error_line(result, "ZeroDivisionError", DEBUG_ENV)
    assert result.exit_code == BUG_EXIT_CODE


@pytest.mark.parametrize("kind", ["connection", "offline-cache"])
def test_texts_build_pile_10k_offline_is_one_line(tmp_path, monkeypatch, kind):
    import huggingface_hub
    import requests
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(**kwargs):
        if kind == "connection":
            raise requests.ConnectionError("Failed to resolve 'huggingface.co'\nmore")
        raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    out = tmp_path / "pile.parquet"
    args = ["texts", "build", "pile-10k", "--out", str(out), "--n-docs", "40", "--n-sample", "12", "--n-keep", "5"]
    result = runner.invoke(app, args)
    one_error_line(result, "monology/pile-uncopyrighted", "cannot download")
    assert not out.exists()
    no_leftovers(tmp_path)
