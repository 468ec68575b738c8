"""Nearest over a remote dataset by ranged reads: a local HTTP server, and the Hub at its boundary."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import numpy as np
import pytest
from helpers import write_dataset
from range_server import serve
from test_index import families
from typer.testing import CliRunner

import llkl_db
from llkl_db.cli.app import app
from llkl_db.errors import LlklError
from llkl_db.indexing import build_index
from llkl_db.io.folder import DatasetFolder
from llkl_db.merge import merge

runner = CliRunner()
COMMIT = "c0ffee" + "0" * 34


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("remote")
    out = tmp / "ds"
    merge([write_dataset(tmp / "shard", families(1200, 256, seed=5))], out)
    build_index(DatasetFolder(out), d=8)  # small coordinates: the index is small next to the vectors
    return out


def vector_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in DatasetFolder(root).vector_files())


def test_nearest_over_http_reads_a_small_fraction_and_equals_the_local_answer(dataset):
    local = llkl_db.open(dataset)
    names = local.entries["entry_id"].to_list()[::301]
    with serve(dataset) as (url, counter):
        remote = llkl_db.open(url)
        after_open = counter["bytes"]
        for name in names:
            a, b = remote.nearest(name, k=5), local.nearest(name, k=5)
            assert a.table["entry_id"].to_list() == b.table["entry_id"].to_list()
            np.testing.assert_allclose(a.table["kl_nats"], b.table["kl_nats"], rtol=1e-12)
        per_query = (counter["bytes"] - after_open) / len(names)
        assert remote.kl(names[0], names[1]) == local.kl(names[0], names[1])
        got = runner.invoke(app, ["nearest", names[0], "--dataset", url, "-k", "3", "--json"])
        assert got.exit_code == 0, got.output
        assert names[0] in got.output
        with pytest.raises(LlklError) as exc:
            remote.kl_matrix()
        assert "not supported" in str(exc.value) and "\n" not in str(exc.value)
    assert per_query < 0.25 * vector_bytes(dataset), (per_query, vector_bytes(dataset))


def test_a_remote_read_that_fails_half_way_is_one_line_and_nothing_is_kept(dataset):
    name = llkl_db.open(dataset).entries["entry_id"][7]
    with serve(dataset) as (url, counter):
        remote = llkl_db.open(url)
        counter["fail_after"] = counter["requests"]  # every later request fails
        with pytest.raises(LlklError) as exc:
            remote.nearest(name)
        assert "\n" not in str(exc.value) and "vectors/" in str(exc.value)
        counter["fail_after"] = None
        assert llkl_db.open(url).nearest(name, k=3).table.height == 3
    with serve(dataset / "vectors") as (url, _):  # no llkl-db.json there
        with pytest.raises(LlklError) as exc:
            llkl_db.open(url)
        assert "not found" in str(exc.value) and "\n" not in str(exc.value)


def test_a_truncated_index_array_served_over_http_is_one_line(dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    path = copy / "index" / "coords.bin"
    path.write_bytes(path.read_bytes()[:-4])
    with serve(copy) as (url, _):
        with pytest.raises(LlklError) as exc:
            llkl_db.open(url)
    assert str(exc.value).startswith(f"{url}/index/coords.bin: ") and "\n" not in str(exc.value)
    assert "truncated" in str(exc.value)


class FakeHub:
    """hf_hub_download / HfFileSystem / snapshot_download serving a local folder as commit COMMIT."""

    def __init__(self, source: Path, cache: Path) -> None:
        self.source, self.snapshot = source, cache / "snapshots" / COMMIT
        self.downloads: list[tuple[str, str]] = []
        self.opened: list[str] = []
        self.snapshots: list[str] = []

    def dataset_info(self, repo_id, revision=None):
        assert revision == "v1.0.0"
        return SimpleNamespace(sha=COMMIT)

    def hf_hub_download(self, repo_id, filename, repo_type=None, revision=None, **_):
        assert repo_type == "dataset" and revision == COMMIT  # pinned to the commit
        self.downloads.append((filename, revision))
        src = self.source / filename
        if not src.is_file():
            raise huggingface_hub.errors.EntryNotFoundError(filename)
        dest = self.snapshot / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return str(dest)

    def filesystem(self):
        hub = self

        class FS:
            def open(self, path, mode="rb", **_):
                prefix = f"datasets/org/name@{COMMIT}/"
                assert path.startswith(prefix), path
                hub.opened.append(path)
                return open(hub.source / path[len(prefix) :], mode)  # noqa: SIM115

        return FS()

    def snapshot_download(self, repo_id, repo_type=None, revision=None, allow_patterns=None, **_):
        assert revision == COMMIT
        self.snapshots.append(revision)
        shutil.copytree(self.source, self.snapshot, dirs_exist_ok=True)
        return str(self.snapshot)


@pytest.fixture
def hub(dataset, tmp_path, monkeypatch):
    fake = FakeHub(dataset, tmp_path / "cache")
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: fake)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake.hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "HfFileSystem", fake.filesystem)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    return fake


def test_hub_nearest_downloads_the_index_only_pinned_to_a_commit(dataset, hub):
    ds = llkl_db.open("hf://datasets/org/name@v1.0.0")
    name = ds.entries["entry_id"][11]
    result = ds.nearest(name, k=4)
    assert result.table["entry_id"].to_list() == llkl_db.open(dataset).nearest(name, k=4).table["entry_id"].to_list()
    assert sorted(f for f, _ in hub.downloads) == [
        "index/basis.parquet",
        "index/calibration.json",
        "index/coords.bin",
        "index/entries.parquet",
        "index/index.json",
        "index/residuals.bin",
        "llkl-db.json",
    ]
    assert hub.opened and all("/vectors/" in p for p in hub.opened)
    assert not hub.snapshots  # no vector file downloaded whole
    ds.kl_matrix()  # whole-matrix work: the snapshot of the same commit
    assert hub.snapshots == [COMMIT]


def test_hub_dataset_without_an_index_is_downloaded_whole(tmp_path, hub):
    plain = write_dataset(tmp_path / "plain", families(30, 32))
    hub.source = plain
    ds = llkl_db.open("hf://datasets/org/name@v1.0.0")
    assert hub.snapshots == [COMMIT]
    assert ds.nearest("org/model-001@main", k=2).search is None
