"""Contribute a shard: validate it (also against the target dataset), then open a pull request
on the dataset repository with its vector files and a description generated from the entries."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llkl_db
from llkl_db.errors import LlklError
from llkl_db.escape import for_markdown, for_markdown_code_span, for_markdown_table_cell, visible_controls

from .hubapi import REPO_TYPE, get_api, hub_call

TABLE_LIMIT = 200


@dataclass(frozen=True)
class ContributeResult:
    """The pull request opened for a shard."""

    repo_id: str
    pr_url: str | None
    pr_num: int | None
    entries: list[str]
    files: list[str]
    description: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "pr_url": self.pr_url,
            "pr_num": self.pr_num,
            "entries": self.entries,
            "files": self.files,
        }


def describe(report, repo_id: str) -> tuple[str, str]:
    """(title, markdown description) of a contribution, generated from its validated entries.
    Every value from the entries is escaped for where it lands (one-line title, Markdown, table)."""
    rows = report.entry_rows
    models = sorted({r["model_id"] for r in rows})
    title = f"Add {len(rows)} entr{'y' if len(rows) == 1 else 'ies'} of {len(models)} model(s)"
    if len(models) == 1:
        title += f": {visible_controls(models[0])}"
    contributors = sorted({r.get("contributor") for r in rows if r.get("contributor")})
    policies = sorted({r.get("bos_policy") for r in rows if r.get("bos_policy")})
    lines = [
        f"Contribution to {for_markdown_code_span(repo_id)} opened with `llkl-db contribute` (llkl-db {llkl_db.__version__}).",
        "",
        f"- text set: {for_markdown_code_span(report.text_set)} (sha256 {for_markdown_code_span(report.text_set_sha256)}), "
        f"N = {report.n_texts}",
        f"- entries: {len(rows)}; models: {len(models)}",
        f"- bos_policy: {for_markdown(', '.join(policies)) or 'n/a'}; "
        f"contributor(s): {for_markdown(', '.join(contributors)) or 'not recorded'}",
        "- validation: passed (schema, text set, finite values, plausible ranges, unique ids also against the target)",
        "",
        "| entry_id | model_type | n_params | layer | variant | dtype | device |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows[:TABLE_LIMIT]:
        cells = [for_markdown_code_span(r["entry_id"], table=True)] + [
            "" if r.get(c) is None else for_markdown_table_cell(r.get(c))
            for c in ("model_type", "n_params", "layer", "variant", "dtype", "device")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows) > TABLE_LIMIT:
        lines.append(f"\n... and {len(rows) - TABLE_LIMIT} more entries.")
    review = for_markdown_code_span(f"llkl-db review {repo_id} --merge")
    lines += ["", f"Maintainers: {review} validates this revision and merges it."]
    return title, "\n".join(lines) + "\n"


def contribute(
    shard: str | os.PathLike,
    repo_id: str,
    *,
    check_target: bool = True,
    api: Any = None,
    token: str | None = None,
) -> ContributeResult:
    """Validate ``shard`` (against the dataset ``repo_id`` unless ``check_target`` is False) and
    open a pull request (``create_commit(create_pr=True)``) adding its vector files."""
    from huggingface_hub import CommitOperationAdd

    from llkl_db.io.folder import DatasetFolder
    from llkl_db.io.source import parse_hub_source
    from llkl_db.validation import ValidationFailed, validate

    shard = Path(shard)
    repo_id, _ = parse_hub_source(repo_id)
    report = validate(shard, against=f"hf://datasets/{repo_id}" if check_target else None)
    if not report.ok:
        raise ValidationFailed(report, "contribute")
    files = DatasetFolder(shard).vector_files()
    operations = [
        CommitOperationAdd(path_in_repo=f.relative_to(shard).as_posix(), path_or_fileobj=str(f)) for f in files
    ]
    if not operations:
        raise LlklError(f"{shard}: nothing to contribute (no vector files)")
    title, description = describe(report, repo_id)
    api = get_api(api, token)
    commit = hub_call(
        f"open a pull request on {repo_id}",
        lambda: api.create_commit(
            repo_id,
            operations,
            commit_message=title,
            commit_description=description,
            repo_type=REPO_TYPE,
            create_pr=True,
        ),
    )
    return ContributeResult(
        repo_id=repo_id,
        pr_url=getattr(commit, "pr_url", None),
        pr_num=getattr(commit, "pr_num", None),
        entries=list(report.entries),
        files=[op.path_in_repo for op in operations],
        description=description,
    )
