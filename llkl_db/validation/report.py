"""What a validation found: every failure with the file, the entry and the reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llkl_db.errors import LlklError


@dataclass(frozen=True)
class Problem:
    """One failed check: where (a file), which entry (or None for the whole file) and why."""

    where: str
    reason: str
    entry: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.entry}: {self.reason}" if self.entry else f"{self.where}: {self.reason}"


@dataclass
class ValidationReport:
    """The outcome of :func:`llkl_db.validation.validate`; ``ok`` only when no check failed."""

    path: Path
    text_set: str | None = None
    text_set_sha256: str | None = None
    n_texts: int | None = None
    entries: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    entry_rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    texts: Any = field(default=None, repr=False)  # the folder's TextSet, for checks that re-score
    vectors: dict[str, Any] = field(default_factory=dict, repr=False)  # entry id -> vector, when kept
    recomputed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, where: Path | str, reason: str, entry: str | None = None) -> None:
        self.problems.append(Problem(str(where), reason, entry))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "text_set": self.text_set,
            "text_set_sha256": self.text_set_sha256,
            "n_texts": self.n_texts,
            "n_entries": len(self.entries),
            "problems": [{"where": p.where, "entry": p.entry, "reason": p.reason} for p in self.problems],
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        state = "passed" if self.ok else f"FAILED ({len(self.problems)} problem(s))"
        return f"{self.path}: {len(self.entries)} entries on text set {self.text_set}: validation {state}"


class ValidationFailed(LlklError):
    """Raised by publish and contribute when a folder fails validation; carries the report."""

    def __init__(self, report: ValidationReport, action: str) -> None:
        first = report.problems[0] if report.problems else None
        super().__init__(
            f"{report.path}: refused to {action}: validation failed with {len(report.problems)} problem(s)"
            + (f", first: {first}" if first else "")
        )
        self.report = report
