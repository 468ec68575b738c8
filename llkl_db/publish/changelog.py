"""A changelog generated from the data: entries added, changed and removed against the previous
version (a folder or a Hub revision). An entry changed when its vector or any of its metadata did."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from llkl_db.escape import for_markdown_code_span
from llkl_db.io.folder import DatasetFolder
from llkl_db.io.vectors import METADATA_COLUMNS


@dataclass
class Changelog:
    """Differences between two versions of a dataset, by entry id."""

    version: str
    previous: str | None
    added: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)  # entry -> what changed
    removed: list[str] = field(default_factory=list)
    models_added: int = 0

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "previous": self.previous,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
        }

    def summary(self) -> str:
        against = f"v{self.previous}" if self.previous else "nothing (first version)"
        return (
            f"{len(self.added)} entries added, {len(self.changed)} changed, {len(self.removed)} removed "
            f"(against {against})"
        )

    def markdown(self, limit: int = 500) -> str:
        """The section of this version in CHANGELOG.md."""
        lines = [f"## v{self.version} ({datetime.now(UTC).date().isoformat()})", "", self.summary() + ".", ""]
        for title, items in (
            ("Added", [f"- {for_markdown_code_span(e)}" for e in self.added]),
            (
                "Changed",
                [f"- {for_markdown_code_span(e)}: {', '.join(what)}" for e, what in self.changed.items()],
            ),
            ("Removed", [f"- {for_markdown_code_span(e)}" for e in self.removed]),
        ):
            if not items:
                continue
            lines += [f"### {title}", "", *items[:limit]]
            if len(items) > limit:
                lines.append(f"- ... and {len(items) - limit} more")
            lines.append("")
        return "\n".join(lines)


def _fingerprints(root: Path) -> dict[str, dict[str, str]]:
    """Entry id -> {column: value fingerprint} for metadata columns and the vector."""
    folder = DatasetFolder(root)
    entries = folder.entries()
    matrix = folder.read_loglik(entries)
    out = {}
    compared = [c for c in METADATA_COLUMNS if c not in ("entry_id", "created_at")]
    for i, row in enumerate(entries.select(["entry_id", *compared]).iter_rows(named=True)):
        prints = {c: repr(row[c]) for c in compared}
        prints["loglik"] = hashlib.sha256(np.ascontiguousarray(matrix[i]).tobytes()).hexdigest()
        out[row["entry_id"]] = prints
    return out


def changelog(new_root: Path, previous_root: Path | None, version: str | None = None) -> Changelog:
    """Compare the dataset at ``new_root`` with the one at ``previous_root`` (None: first version)."""
    version = version or DatasetFolder(new_root).metadata.dataset_version
    new = _fingerprints(new_root)
    if previous_root is None:
        return Changelog(version, None, added=sorted(new))
    old = _fingerprints(previous_root)
    log = Changelog(version, DatasetFolder(previous_root).metadata.dataset_version)
    log.added = sorted(set(new) - set(old))
    log.removed = sorted(set(old) - set(new))
    for eid in sorted(set(new) & set(old)):
        diff = [c for c in new[eid] if new[eid][c] != old[eid].get(c)]
        if diff:
            log.changed[eid] = diff
    return log


def changelog_text(log: Changelog, earlier: str) -> tuple[str, str]:
    """CHANGELOG.md with this version's section on top of ``earlier`` (replacing an older section
    of the same version), and the section alone."""
    body = earlier.split("\n", 2)[2] if earlier.startswith("# Changelog\n") else earlier
    sections = [s for s in ("\n" + body).split("\n## ") if s.strip()]
    kept = [s for s in sections if not s.startswith(f"v{log.version} ")]
    section = log.markdown()
    text = "# Changelog\n\n" + section.rstrip() + "\n" + "".join(f"\n## {s.rstrip()}\n" for s in kept)
    return text, section
