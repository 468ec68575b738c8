"""Opening datasets from the Hub, tested at the huggingface_hub boundary (no network here)."""

from __future__ import annotations

import pytest
from helpers import synthetic_loglik, write_dataset

import llkl_db
from llkl_db.errors import LlklError
from llkl_db.io import hub
from llkl_db.io.source import parse_hub_source


@pytest.fixture
def snapshot(tmp_path, monkeypatch):
    """A real dataset folder standing in for what snapshot_download would return; records calls."""
    folder = write_dataset(tmp_path / "snap", synthetic_loglik(4, 30))
    calls = []

    def fake_snapshot_download(**kwargs):
        calls.append(kwargs)
        return str(folder)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    return calls


@pytest.mark.parametrize(
    "source,revision,expected",
    [
        ("hf://datasets/org/name", None, ("org/name", None)),
        ("hf://datasets/org/name@v1.2.0", None, ("org/name", "v1.2.0")),
        ("org/name", "v1.0.0", ("org/name", "v1.0.0")),
    ],
)
def test_parse_hub_source(source, revision, expected):
    assert parse_hub_source(source, revision) == expected


@pytest.mark.parametrize("bad", ["hf://datasets/only-one", "hf://datasets/a/b/c", "hf://datasets//x"])
def test_bad_hub_source(bad):
    with pytest.raises(LlklError, match="expected"):
        parse_hub_source(bad)


def test_revision_given_twice_must_agree():
    with pytest.raises(LlklError, match="revision given twice"):
        parse_hub_source("hf://datasets/org/name@v1", "v2")


def test_open_hub_dataset_downloads_one_snapshot_of_dataset_files(snapshot):
    ds = llkl_db.open("hf://datasets/org/name@v1.2.0")
    assert len(ds) == 4
    (call,) = snapshot
    assert call["repo_id"] == "org/name" and call["repo_type"] == "dataset" and call["revision"] == "v1.2.0"
    assert "vectors/**/*.parquet" in call["allow_patterns"] and "llkl-db.json" in call["allow_patterns"]


def test_open_org_name_with_revision_keyword(snapshot):
    llkl_db.open("org/name", revision="v1.0.0")
    assert snapshot[0]["revision"] == "v1.0.0"


def test_offline_without_cache_is_one_clear_line(monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(**kwargs):
        raise LocalEntryNotFoundError("offline")

    monkeypatch.setattr("huggingface_hub.snapshot_download", offline)
    with pytest.raises(LlklError, match="not in the local cache"):
        hub.download_dataset("org/name")
