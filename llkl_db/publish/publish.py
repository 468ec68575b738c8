"""Publish a dataset folder as a version: validate, write the card and the changelog, upload
(to a Hub dataset repository, or into a local folder), tag vX.Y.Z.

The source folder is never modified: the release (its files, the version in ``llkl-db.json``,
the card and the changelog) is assembled in a staging folder, which is uploaded or swapped in.
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
from llkl_db.io.folder import MIRRORED_PATTERNS, PUBLISHED_PATTERNS, DatasetFolder, replacing

from .changelog import Changelog, changelog, changelog_text
from .hubapi import REPO_TYPE, get_api, hub_call
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


def _prepare(folder: DatasetFolder, tag: str | None) -> tuple[str, Any]:
    """Validate and settle the version; returns (version, metadata of the release)."""
    from llkl_db.validation import ValidationFailed, validate

    if not folder.is_dataset():
        raise LlklError(
            f"{folder.root}: not a dataset folder (no {folder.metadata_path.name}); make one with llkl-db merge"
        )
    report = validate(folder.root)
    if not report.ok:
        raise ValidationFailed(report, "publish")
    metadata = folder.metadata
    version = parse_tag(tag) if tag else metadata.dataset_version
    return version, replace(metadata, dataset_version=version)


def _assemble(
    source: DatasetFolder,
    release: DatasetFolder,
    metadata,
    log: Changelog,
    repo_id: str,
    earlier: str,
    link: bool = False,
) -> str:
    """Fill ``release`` with the published files of ``source`` and this version's metadata, card
    and changelog; returns the changelog section of the version. ``link`` hard-links the files
    instead of copying them (for a release that is uploaded and then dropped)."""
    from llkl_db.card import render_card

    written_here = {source.metadata_path, source.card_path, source.changelog_path}
    for pattern in PUBLISHED_PATTERNS:
        for f in source.root.glob(pattern):
            if f.is_file() and not f.is_symlink() and f not in written_here:
                dest = release.root / f.relative_to(source.root)
                dest.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(f, dest) if link else shutil.copyfile(f, dest)
    release.write_metadata(metadata)
    release.retag_index(metadata.dataset_version)
    text, section = changelog_text(log, earlier)
    release.write_changelog(text)
    release.write_card(render_card(release, metadata, release.entries(), repo_id=repo_id))
    return section


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


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
    overwrite: bool = False,
) -> PublishResult:
    """Publish the dataset folder ``folder`` to the Hub dataset ``repo_id`` or into the local
    folder ``to``. Refuses a folder that fails validation and a tag that is not vX.Y.Z.

    The changelog compares with ``previous`` (a folder or dataset source) when given, else with
    the latest vX.Y.Z tag of the repository (or the dataset already in ``to``). The card
    (README.md), CHANGELOG.md and, with ``tag``, the version in llkl-db.json are written into
    the release, never into ``folder``. A non-empty ``to`` that is not a llkl-db dataset is
    refused unless ``overwrite``.
    """
    folder = DatasetFolder(folder)
    if (repo_id is None) == (to is None):
        raise LlklError("publish: give either a Hub repository (repo_id ORG/NAME) or a local folder (to)")
    if tag is not None:
        parse_tag(tag)  # refuse a bad tag before any work
    version, metadata = _prepare(folder, tag)
    if to is not None:
        return _publish_local(folder, Path(to), version, tag, metadata, previous, overwrite)
    return _publish_hub(folder, repo_id, version, tag, metadata, previous, get_api(api, token))


def _previous_changelog(root: Path | None) -> str:
    path = DatasetFolder(root).changelog_path if root is not None else None
    return path.read_text("utf-8") if path is not None and path.is_file() else ""


def _publish_local(
    folder: DatasetFolder, target: Path, version: str, tag, metadata, previous, overwrite: bool = False
) -> PublishResult:
    from llkl_db.io.source import resolve_source

    if target.resolve() == folder.root.resolve():
        raise LlklError(f"{target}: the destination is the folder being published")
    if target.exists() and not target.is_dir():
        raise LlklError(f"{target}: exists and is not a folder")
    prev_root = resolve_source(previous) if previous is not None else None
    if prev_root is None and DatasetFolder(target).is_dataset():
        prev_root = target
    if prev_root is not None:
        _check_newer(version, DatasetFolder(prev_root).metadata.dataset_version, str(target))
    log = changelog(folder.root, prev_root, version)
    earlier = _previous_changelog(prev_root) or _previous_changelog(folder.root)
    with replacing(target, overwrite=overwrite) as release:
        _assemble(folder, release, metadata, log, str(target), earlier)
    return PublishResult(str(target), version, tag, log)


def _publish_hub(folder: DatasetFolder, repo_id: str, version: str, tag, metadata, previous, api) -> PublishResult:
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
    log = changelog(folder.root, prev_root, version)
    earlier = _previous_changelog(prev_root) or _previous_changelog(folder.root)
    with tempfile.TemporaryDirectory(prefix="llkl-db-release-") as tmp:
        release = DatasetFolder(tmp)
        section = _assemble(folder, release, metadata, log, repo_id, earlier, link=True)
        commit = hub_call(
            f"upload to {repo_id}",
            lambda: api.upload_folder(
                repo_id=repo_id,
                folder_path=str(release.root),
                repo_type=REPO_TYPE,
                commit_message=f"llkl-db dataset v{version}: {log.summary()}",
                commit_description=section,
                allow_patterns=PUBLISHED_PATTERNS,
                delete_patterns=MIRRORED_PATTERNS,
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
