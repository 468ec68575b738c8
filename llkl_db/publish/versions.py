"""Semantic dataset versions: X.Y.Z in the metadata, vX.Y.Z as the Hub tag that pins one."""

from __future__ import annotations

import re

from llkl_db.errors import BadValueError, LlklError

_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


def parse_version(text: str) -> tuple[int, int, int]:
    """``"1.2.0"`` -> (1, 2, 0); anything else is a :class:`LlklError`."""
    match = _VERSION.match(text or "")
    if not match:
        raise LlklError(f"version {text!r} is not semantic (X.Y.Z, e.g. 1.2.0)")
    return int(match[1]), int(match[2]), int(match[3])


def parse_tag(tag: str) -> str:
    """``"v1.2.0"`` -> ``"1.2.0"``; a tag that is not vX.Y.Z is refused."""
    if not tag or not tag.startswith("v") or not _VERSION.match(tag[1:]):
        raise BadValueError("tag", tag, "dataset versions are semantic, expected vX.Y.Z (e.g. v1.2.0)")
    return tag[1:]


def latest_version(tags: list[str]) -> str | None:
    """The highest vX.Y.Z among ``tags`` (others ignored), as X.Y.Z."""
    versions = [t[1:] for t in tags if t.startswith("v") and _VERSION.match(t[1:])]
    return max(versions, key=parse_version) if versions else None
