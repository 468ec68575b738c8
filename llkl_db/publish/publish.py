"""Publish a dataset folder as a version: validate, write the card and the changelog, upload
(to a Hub dataset repository, or into a local folder), tag vX.Y.Z.

``llkl_db.open("hf://datasets/ORG/NAME@v1.2.0")`` (or ``revision="v1.2.0"``) then pins it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from llkl_db.errors import LlklError
from llkl_db.schema import METADATA_FILE

from .changelog import CHANGELOG_FILE, Changelog, changelog, write_changelog
from .hubapi import MIRROR_PATTERNS, REPO_TYPE, UPLOAD_PATTERNS, get_api, hub_call
from .versions import latest_version, parse_tag, parse_version


@dataclass(frozen=True)
class PublishResult:
    """Where a version went, and what changed in it."""

    destination: str
    version: str
    tag: str | None
    changelog: Changelog
    commit_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "version": self.version,
            "tag": self.tag,
            "commit_url": self.commit_url,
            "changelog": self.changelog.to_dict(),
        }


def _prepare(folder: Path, tag: str | None) -> tuple[str, Any]:
    """Validate and settle the version; returns (version, metadata)."""
    from llkl_db.io.metadata import read_metadata, write_metadata
    from llkl_db.validation import ValidationFailed, validate

    if not (folder / METADATA_FILE).is_file():
        raise LlklError(f"{folder}: not a dataset folder (no {METADATA_FILE}); make one with llkl-db merge")
    report = validate(folder)
    if not report.ok:
        raise ValidationFailed(report, "publish")
    metadata = read_metadata(folder)
    version = parse_tag(tag) if tag else metadata.dataset_version
    if version != metadata.dataset_version:
        metadata = replace(metadata, dataset_version=version)
        write_metadata(folder, metadata)
    return version, metadata


def _finish(folder: Path, metadata, log: Changelog, repo_id: str, previous_changelog: str | None) -> str:
    from llkl_db.card import render_card
    from llkl_db.io.atomic import write_text_atomic
    from llkl_db.io.vectors import TextSetKey, scan_entries, vector_files

    section = write_changelog(folder, log, previous_changelog)
    entries = scan_entries(
        vector_files(folder), metadata.n_texts, TextSetKey(metadata.text_set, metadata.text_set_sha256), folder
    )
    write_text_atomic(folder / "README.md", render_card(folder, metadata, entries, repo_id=repo_id))
    return section


def _check_newer(version: str, previous: str | None, where: str) -> None:
    if previous is not None and parse_version(version) <= parse_version(previous):
        raise LlklError(f"{where}: version {version} is not newer than the published {previous}")


def publish(
    folder: str | os.PathLike,
    repo_id: str | None = None,
    *,
    to: str | os.PathLike | None = None,
    tag: str | None = None,
    previous: str | os.PathLike | None = None,
    api: Any = None,
    token: str | None = None,
) -> PublishResult:
    """Publish the dataset folder ``folder`` to the Hub dataset ``repo_id`` or into the local
    folder ``to``. Refuses a folder that fails validation and a tag that is not vX.Y.Z.

    The changelog compares with ``previous`` (a folder or dataset source) when given, else with
    the latest vX.Y.Z tag of the repository (or the dataset already in ``to``). The card
    (README.md), CHANGELOG.md and, with ``tag``, the version in llkl-db.json are written into
    ``folder`` itself before it is uploaded.
    """
    folder = Path(folder)
    if (repo_id is None) == (to is None):
        raise LlklError("publish: give either a Hub repository (--repo ORG/NAME) or a local folder (--to DIR)")
    if tag is not None:
        parse_tag(tag)  # refuse a bad tag before any work
    version, metadata = _prepare(folder, tag)
    if to is not None:
        return _publish_local(folder, Path(to), version, tag, metadata, previous)
    return _publish_hub(folder, repo_id, version, tag, metadata, previous, get_api(api, token))


def _previous_changelog(root: Path | None) -> str | None:
    path = root / CHANGELOG_FILE if root is not None else None
    return path.read_text("utf-8") if path is not None and path.is_file() else None


def _publish_local(folder: Path, target: Path, version: str, tag, metadata, previous) -> PublishResult:
    from llkl_db.io.metadata import read_metadata
    from llkl_db.io.source import resolve_source

    if target.resolve() == folder.resolve():
        raise LlklError(f"{target}: the destination is the folder being published")
    prev_root = resolve_source(previous) if previous is not None else None
    if prev_root is None and (target / METADATA_FILE).is_file():
        prev_root = target
    if prev_root is not None:
        _check_newer(version, read_metadata(prev_root).dataset_version, str(target))
    log = changelog(folder, prev_root, version)
    _finish(folder, metadata, log, str(target), _previous_changelog(prev_root))
    _copy_dataset(folder, target)
    return PublishResult(str(target), version, tag, log)


def _copy_dataset(folder: Path, target: Path) -> None:
    """Copy the dataset files into ``target``, swapped in whole (a reader never sees half)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.publish-", dir=target.parent))
    try:
        for pattern in UPLOAD_PATTERNS:
            for f in folder.glob(pattern):
                if f.is_file():
                    dest = staging / f.relative_to(folder)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(f, dest)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            old.rmdir()
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _publish_hub(folder: Path, repo_id: str, version: str, tag, metadata, previous, api) -> PublishResult:
    from huggingface_hub.errors import RepositoryNotFoundError

    from llkl_db.io.hub import download_dataset
    from llkl_db.io.source import parse_hub_source, resolve_source

    repo_id, _ = parse_hub_source(repo_id)

    def list_tags() -> list[str] | None:
        try:
            return [t.name for t in api.list_repo_refs(repo_id, repo_type=REPO_TYPE).tags]
        except RepositoryNotFoundError:
            return None

    tags = hub_call(f"list tags of {repo_id}", list_tags)
    if tags is None:
        hub_call(f"create {repo_id}", lambda: api.create_repo(repo_id, repo_type=REPO_TYPE, exist_ok=True))
        tags = []
    if tag is not None and tag in tags:
        raise LlklError(f"{repo_id}: tag {tag} already exists; a published version never changes, bump the version")
    latest = latest_version(tags)
    _check_newer(version, latest, repo_id)
    if previous is not None:
        prev_root = resolve_source(previous)
    elif latest is not None:
        prev_root = download_dataset(repo_id, f"v{latest}")
    else:
        prev_root = None
    log = changelog(folder, prev_root, version)
    section = _finish(folder, metadata, log, repo_id, _previous_changelog(prev_root))
    commit = hub_call(
        f"upload to {repo_id}",
        lambda: api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type=REPO_TYPE,
            commit_message=f"llkl-db dataset v{version}: {log.summary()}",
            commit_description=section,
            allow_patterns=UPLOAD_PATTERNS,
            delete_patterns=MIRROR_PATTERNS,
        ),
    )
    oid = getattr(commit, "oid", None)
    if tag is not None:
        hub_call(
            f"tag {repo_id}",
            lambda: api.create_tag(
                repo_id, tag=tag, tag_message=f"llkl-db dataset v{version}", revision=oid, repo_type=REPO_TYPE
            ),
        )
    return PublishResult(f"hf://datasets/{repo_id}", version, tag, log, getattr(commit, "commit_url", None))
