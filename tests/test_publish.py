"""Publish, contribute and review. What goes to the Hub is checked at the HfApi boundary with a
fake that records every call (no network here); everything else runs on real folders."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from contrib_helpers import good_dataset, good_shard
from huggingface_hub.community import Discussion
from huggingface_hub.errors import RepositoryNotFoundError
from huggingface_hub.hf_api import CommitInfo, GitRefInfo, GitRefs
from typer.testing import CliRunner

import llkl_db
from llkl_db.cli import app
from llkl_db.errors import LlklError
from llkl_db.merge import merge
from llkl_db.publish import contribute, parse_tag, publish, review
from llkl_db.validation import ValidationFailed

runner = CliRunner()
HUB = "https://huggingface.co"


def _not_found() -> RepositoryNotFoundError:
    """The Hub's 404 for a repository (built without an HTTP response object)."""
    err = RepositoryNotFoundError.__new__(RepositoryNotFoundError)
    Exception.__init__(err, "404 Client Error: Repository Not Found")
    return err


class FakeApi:
    """Stands in for huggingface_hub.HfApi: records calls, returns the Hub's own result types."""

    def __init__(self, tags=(), exists=True, discussions=()):
        self.calls: list[tuple[str, dict]] = []
        self.tags = list(tags)
        self.exists = exists
        self.discussions = list(discussions)
        self.uploaded: dict[str, bytes] = {}

    def list_repo_refs(self, repo_id, *, repo_type=None, **kw):
        self.calls.append(("list_repo_refs", {"repo_id": repo_id, "repo_type": repo_type}))
        if not self.exists:
            raise _not_found()
        return GitRefs(branches=[], converts=[], tags=[GitRefInfo(t, f"refs/tags/{t}", "c0ffee") for t in self.tags])

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))
        folder = Path(kw["folder_path"])
        for f in folder.rglob("*"):
            if f.is_file():
                self.uploaded[f.relative_to(folder).as_posix()] = f.read_bytes()
        return CommitInfo(
            commit_url=f"{HUB}/datasets/{kw['repo_id']}/commit/abc123",
            commit_message=kw["commit_message"],
            commit_description=kw.get("commit_description") or "",
            oid="abc123",
        )

    def create_tag(self, repo_id, **kw):
        self.calls.append(("create_tag", {"repo_id": repo_id, **kw}))

    def create_commit(self, repo_id, operations, **kw):
        operations = list(operations)
        self.calls.append(("create_commit", {"repo_id": repo_id, "operations": operations, **kw}))
        return CommitInfo(
            commit_url=f"{HUB}/datasets/{repo_id}/commit/def456",
            commit_message=kw["commit_message"],
            commit_description=kw.get("commit_description") or "",
            oid="def456",
            pr_url=f"{HUB}/datasets/{repo_id}/discussions/7",
        )

    def get_repo_discussions(self, repo_id, **kw):
        self.calls.append(("get_repo_discussions", {"repo_id": repo_id, **kw}))
        return iter(self.discussions)

    def merge_pull_request(self, repo_id, discussion_num, **kw):
        self.calls.append(("merge_pull_request", {"repo_id": repo_id, "discussion_num": discussion_num, **kw}))

    def called(self, name):
        return [kw for n, kw in self.calls if n == name]


@pytest.fixture
def snapshots(monkeypatch):
    """snapshot_download returning real folders by revision; records its calls."""
    by_revision: dict[str | None, Path] = {}
    calls = []

    def fake_snapshot_download(**kwargs):
        calls.append(kwargs)
        return str(by_revision[kwargs.get("revision")])

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    return by_revision, calls


# --- versions -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["1.2.0", "v1.2", "latest", "v1.2.0-rc1", "v01.2.0", ""])
def test_non_semver_tags_are_refused(bad, tmp_path):
    with pytest.raises(LlklError, match="semantic"):
        parse_tag(bad)
    root = good_dataset(tmp_path / "ds")
    api = FakeApi()
    result = runner.invoke(app, ["publish", str(root), "--to", str(tmp_path / "pub"), "--tag", bad or "x"])
    assert result.exit_code == 1 and "semantic" in result.output
    assert parse_tag("v1.2.0") == "1.2.0" and not api.calls


# --- local publish: card, changelog, read back ------------------------------------------------
def test_publish_into_a_local_folder_reads_back_and_queries(tmp_path):
    from llkl_db.io.scores import write_scores

    root = good_dataset(tmp_path / "ds", k=5)
    write_scores(root, [{"model_id": "org/model-000", "score": "score_v1_MMLU", "value": 50.0, "source": "test"}])
    result = publish(root, to=tmp_path / "pub", tag="v1.0.0")
    assert result.version == "1.0.0" and len(result.changelog.added) == 5 and result.changelog.previous is None
    ds = llkl_db.open(tmp_path / "pub")
    assert ds.metadata.dataset_version == "1.0.0" and len(ds) == 5
    assert ds.nearest("org/model-000", k=2).table.height == 2
    card = (tmp_path / "pub" / "README.md").read_text()
    for needle in (
        "config_name: models",
        "data_files: vectors/models/*.parquet",
        "default: true",
        "license_name: llkl-db-mixed",
        "2nd percentile",
        "config_name: texts",
        "config_name: model_scores",
        "pl.scan_parquet",
        "load_dataset(",
        "arXiv:2502.16173",
        "arXiv:2505.15353",
        "| `loglik` |",
        "tester: 5 entries",  # licence notes per source of vectors
        "synthetic (30 texts)",  # and per source of texts
        "CHANGELOG.md",
    ):
        assert needle in card, needle
    log = (tmp_path / "pub" / "CHANGELOG.md").read_text()
    assert log.startswith("# Changelog") and "## v1.0.0" in log and "`org/model-004@main`" in log
    assert not (tmp_path / "pub" / "done").exists()


def test_changelog_lists_added_and_changed_entries_against_the_previous_version(tmp_path):
    root = good_dataset(tmp_path / "ds", k=3)
    publish(root, to=tmp_path / "pub", tag="v1.0.0")
    # next version: one vector changed, two entries added
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = sorted((root / "vectors").rglob("*.parquet"))[0]
    table = pq.read_table(path)
    ll = table.column("loglik").combine_chunks()
    m = ll.flatten().to_numpy().reshape(table.num_rows, -1).copy()
    m[1] -= 1.0
    arr = pa.FixedSizeListArray.from_arrays(pa.array(m.ravel(), type=pa.float32()), m.shape[1])
    pq.write_table(table.set_column(table.schema.get_field_index("loglik"), table.schema.field("loglik"), arr), path)
    merge([good_shard(tmp_path / "shard", k=2, prefix="new/model")], root)
    result = runner.invoke(app, ["publish", str(root), "--to", str(tmp_path / "pub"), "--tag", "v1.1.0", "--json"])
    assert result.exit_code == 0, result.output
    log = json.loads(result.stdout)["changelog"]
    assert log["previous"] == "1.0.0"
    assert log["added"] == ["new/model-000@main", "new/model-001@main"]
    assert log["changed"] == {"org/model-001@main": ["loglik"]} and log["removed"] == []
    text = (tmp_path / "pub" / "CHANGELOG.md").read_text()
    assert text.index("## v1.1.0") < text.index("## v1.0.0")
    assert llkl_db.open(tmp_path / "pub").metadata.dataset_version == "1.1.0"
    # a version that is not newer is refused
    again = runner.invoke(app, ["publish", str(root), "--to", str(tmp_path / "pub"), "--tag", "v1.0.5"])
    assert again.exit_code == 1 and "not newer" in again.output


def test_publish_refuses_a_folder_that_fails_validation(tmp_path):
    root = good_dataset(tmp_path / "ds")
    (sorted((root / "vectors").rglob("*.parquet"))[0].parent / "dup.parquet").write_bytes(
        sorted((root / "vectors").rglob("*.parquet"))[0].read_bytes()
    )
    api = FakeApi()
    with pytest.raises(ValidationFailed, match="duplicate entry id"):
        publish(root, "org/name", tag="v1.0.0", api=api)
    assert not api.calls
    result = runner.invoke(app, ["publish", str(root), "--to", str(tmp_path / "pub")])
    assert result.exit_code == 1 and "FAIL" in result.output and "refused to publish" in result.output
    assert not (tmp_path / "pub").exists()
    shard = good_shard(tmp_path / "shard")
    with pytest.raises(LlklError, match="not a dataset folder"):
        publish(shard, to=tmp_path / "pub")


# --- Hub publish at the HfApi boundary --------------------------------------------------------
def test_publish_to_a_new_hub_repository(tmp_path):
    root = good_dataset(tmp_path / "ds")
    (root / "done").mkdir()
    (root / "done" / "job.json").write_text("{}")
    api = FakeApi(exists=False)
    result = publish(root, "org/name", tag="v1.0.0", api=api)
    (create,) = api.called("create_repo")
    assert create["repo_id"] == "org/name" and create["repo_type"] == "dataset" and create["exist_ok"]
    (upload,) = api.called("upload_folder")
    assert upload["repo_id"] == "org/name" and upload["repo_type"] == "dataset"
    assert Path(upload["folder_path"]) != root  # the release is assembled aside: the source is never modified
    assert "vectors/**/*.parquet" in upload["allow_patterns"] and "done/**" not in upload["allow_patterns"]
    assert "vectors/**" in upload["delete_patterns"]
    assert upload["commit_message"].startswith("llkl-db dataset v1.0.0")
    assert "## v1.0.0" in upload["commit_description"]
    card = api.uploaded["README.md"].decode()
    assert "hf://datasets/org/name/vectors/**/*.parquet" in card and 'load_dataset("org/name"' in card
    (tag,) = api.called("create_tag")
    assert tag == {
        "repo_id": "org/name",
        "tag": "v1.0.0",
        "tag_message": "llkl-db dataset v1.0.0",
        "revision": "abc123",
        "repo_type": "dataset",
    }
    assert result.commit_url.endswith("/commit/abc123")
    assert api.calls.index(("create_tag", tag)) > api.calls.index(("upload_folder", upload))


def test_publish_next_version_diffs_against_the_latest_tag(tmp_path, snapshots):
    by_revision, calls = snapshots
    old = good_dataset(tmp_path / "old", k=2, dataset_version="1.0.0")
    by_revision["v1.0.0"] = old
    root = tmp_path / "ds"
    shutil.copytree(old, root)
    merge([good_shard(tmp_path / "shard", k=1, prefix="new/model")], root)
    api = FakeApi(tags=["v0.9.0", "v1.0.0", "not-a-version"])
    result = publish(root, "hf://datasets/org/name", tag="v1.1.0", api=api)
    assert calls[0]["revision"] == "v1.0.0" and calls[0]["repo_id"] == "org/name"
    assert result.changelog.added == ["new/model-000@main"] and result.changelog.previous == "1.0.0"
    assert not api.called("create_repo")
    assert "new/model-000@main" in api.called("upload_folder")[0]["commit_description"]


@pytest.mark.parametrize("tag,reason", [("v1.0.0", "already exists"), ("v0.5.0", "not newer")])
def test_publish_refuses_existing_or_older_tags_before_uploading(tmp_path, tag, reason):
    root = good_dataset(tmp_path / "ds")
    api = FakeApi(tags=["v1.0.0"])
    with pytest.raises(LlklError, match=reason):
        publish(root, "org/name", tag=tag, api=api)
    assert not api.called("upload_folder") and not api.called("create_tag")


def test_a_published_version_is_pinned_by_revision(tmp_path, snapshots):
    by_revision, calls = snapshots
    by_revision["v1.2.0"] = good_dataset(tmp_path / "v120", dataset_version="1.2.0")
    ds = llkl_db.open("org/name", revision="v1.2.0")
    assert ds.metadata.dataset_version == "1.2.0" and calls[-1]["revision"] == "v1.2.0"


# --- contribute -------------------------------------------------------------------------------
def test_contribute_opens_a_pull_request_with_the_vector_files(tmp_path, snapshots, monkeypatch):
    by_revision, calls = snapshots
    by_revision[None] = good_dataset(tmp_path / "target")
    shard = good_shard(tmp_path / "shard", k=2, prefix="new/model")
    api = FakeApi()
    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: api)
    result = runner.invoke(app, ["contribute", str(shard), "--repo", "org/name"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{HUB}/datasets/org/name/discussions/7"
    assert calls[0]["repo_id"] == "org/name"  # validated against the target dataset
    (commit,) = api.called("create_commit")
    assert commit["create_pr"] is True and commit["repo_type"] == "dataset" and commit["repo_id"] == "org/name"
    ops = commit["operations"]
    assert [op.path_in_repo for op in ops] == ["vectors/models/part-000.parquet"]
    assert Path(ops[0].path_or_fileobj) == shard / "vectors/models/part-000.parquet"
    assert commit["commit_message"] == "Add 2 entries of 2 model(s)"
    description = commit["commit_description"]
    assert "`new/model-000@main`" in description and "`new/model-001@main`" in description
    assert "test-texts" in description and "tester" in description


def test_contribute_refuses_ids_already_in_the_target(tmp_path, snapshots):
    by_revision, _ = snapshots
    by_revision[None] = good_dataset(tmp_path / "target", prefix="org/model")
    shard = good_shard(tmp_path / "shard", prefix="org/model")
    api = FakeApi()
    with pytest.raises(ValidationFailed, match="already in the target"):
        contribute(shard, "org/name", api=api)
    assert not api.calls


def test_contribute_refuses_a_broken_shard_even_without_target_check(tmp_path):
    shard = good_shard(tmp_path / "shard")
    (shard / "texts" / "test-texts.parquet").write_bytes(b"junk")
    api = FakeApi()
    with pytest.raises(ValidationFailed):
        contribute(shard, "org/name", check_target=False, api=api)
    assert not api.calls


# --- review -----------------------------------------------------------------------------------
def _pr(num, title="Add entries"):
    return Discussion(
        title=title,
        status="open",
        num=num,
        repo_id="org/name",
        repo_type="dataset",
        author="contributor",
        is_pull_request=True,
        created_at=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
        endpoint=HUB,
    )


def test_review_validates_each_pr_revision_and_merges_those_that_pass(tmp_path, snapshots, monkeypatch):
    by_revision, calls = snapshots
    good = good_dataset(tmp_path / "main")
    merge([good_shard(tmp_path / "s1", prefix="new/model")], good)
    bad = tmp_path / "pr2"
    shutil.copytree(good, bad)
    merge([good_shard(tmp_path / "s2", prefix="other/model")], bad)
    nan_file = sorted((bad / "vectors").rglob("*.parquet"))[-1]
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(nan_file)
    m = table.column("loglik").combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1).copy()
    m[0, 0] = np.nan
    arr = pa.FixedSizeListArray.from_arrays(pa.array(m.ravel(), type=pa.float32()), m.shape[1])
    pq.write_table(
        table.set_column(table.schema.get_field_index("loglik"), table.schema.field("loglik"), arr), nan_file
    )
    by_revision["refs/pr/1"], by_revision["refs/pr/2"] = good, bad

    api = FakeApi(discussions=[_pr(1), _pr(2, "Broken")])
    results = review("org/name", merge=True, api=api)
    (listing,) = api.called("get_repo_discussions")
    assert listing["discussion_type"] == "pull_request" and listing["discussion_status"] == "open"
    assert listing["repo_type"] == "dataset"
    assert [c["revision"] for c in calls] == ["refs/pr/1", "refs/pr/2"]
    assert [r.ok for r in results] == [True, False] and results[0].merged and not results[1].merged
    assert any("non-finite" in p and "refs/pr/2" in p for p in results[1].problems)
    (merged,) = api.called("merge_pull_request")
    assert merged["discussion_num"] == 1 and merged["repo_type"] == "dataset"

    api = FakeApi(discussions=[_pr(1), _pr(2, "Broken")])
    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: api)
    result = runner.invoke(app, ["review", "org/name"])
    assert result.exit_code == 1
    assert "#1 'Add entries' by contributor: passes" in result.output and "#2 'Broken'" in result.output
    assert "FAIL" in result.output and not api.called("merge_pull_request")
