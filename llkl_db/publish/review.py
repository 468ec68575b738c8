"""Review open pull requests of a dataset repository: validate each one's revision
(``refs/pr/N``, the whole dataset as it would be after merging), report, and optionally merge
those that pass. Usable as a scheduled job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llkl_db.errors import LlklError
from llkl_db.io.parquet import short

from .hubapi import REPO_TYPE, get_api, hub_call


@dataclass
class ReviewResult:
    """One pull request: its validation outcome and whether it was merged."""

    num: int
    title: str
    author: str
    url: str
    revision: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    n_entries: int = 0
    merged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def review(repo_id: str, *, merge: bool = False, api: Any = None, token: str | None = None) -> list[ReviewResult]:
    """Validate every open pull request of the dataset ``repo_id``; with ``merge`` merge those that pass."""
    from llkl_db.io.hub import download_dataset
    from llkl_db.io.source import parse_hub_source
    from llkl_db.validation import validate

    repo_id, _ = parse_hub_source(repo_id)
    api = get_api(api, token)
    discussions = hub_call(
        f"list pull requests of {repo_id}",
        lambda: list(
            api.get_repo_discussions(
                repo_id, discussion_type="pull_request", discussion_status="open", repo_type=REPO_TYPE
            )
        ),
    )
    results = []
    for d in discussions:
        revision = d.git_reference or f"refs/pr/{d.num}"
        result = ReviewResult(d.num, d.title, d.author, d.url, revision, ok=False)
        try:
            folder = download_dataset(repo_id, revision)
            report = validate(folder)
        except LlklError as exc:
            result.problems = [str(exc)]
            results.append(result)
            continue
        except BaseException as exc:  # noqa: BLE001 - one PR's failure must not stop the review
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            # A bug or a library panic (Polars' PanicException is a BaseException) on this PR's
            # files: report it for this pull request and go on to the next one.
            result.problems = [f"{revision}: validation failed ({type(exc).__name__}: {short(exc)})"]
            results.append(result)
            continue
        result.ok, result.n_entries = report.ok, len(report.entries)
        result.problems = [str(p).replace(str(folder), revision) for p in report.problems]
        if merge and result.ok:
            hub_call(
                f"merge pull request #{d.num} of {repo_id}",
                lambda d=d, n=len(report.entries): api.merge_pull_request(
                    repo_id,
                    d.num,
                    comment=f"Validated by `llkl-db review`: {n} entries pass. Merged.",
                    repo_type=REPO_TYPE,
                ),
            )
            result.merged = True
        results.append(result)
    return results
