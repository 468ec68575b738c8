"""Run a list of jobs into an output folder: skip finished ones, record failures, go on."""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llkl_db.builders.build import BuildOptions, check_out_dir, is_done, run_job
from llkl_db.builders.jobs import Job
from llkl_db.builders.plan import record_failure
from llkl_db.errors import LlklError
from llkl_db.textsets import TextSet

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass
class RunSummary:
    """What a run did: jobs finished now (and the entries they wrote), skipped as already done,
    and failed (with reasons)."""

    finished: list[str] = field(default_factory=list)
    entries_written: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def run_jobs(
    jobs: list[Job],
    texts: TextSet,
    out: Path,
    options: BuildOptions,
    on_event: Callable[[str, Job, str], None] | None = None,
) -> RunSummary:
    """Run each job not yet done; a job that fails is logged with its reason and the run goes on."""
    check_out_dir(out, texts)
    summary = RunSummary()
    for job in jobs:
        if is_done(out, job):
            summary.skipped.append(job.key)
            continue
        if on_event:
            on_event("start", job, "")
        try:
            written = run_job(job, texts, out, options)
        except (LlklError, RuntimeError, OSError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if isinstance(exc, OSError) and exc.errno in DISK_FULL:
                # Every later job would fail the same way: stop, with the failure recorded if it fits.
                try:
                    record_failure(out, job, f"disk full: {reason}")
                except OSError:
                    pass
                where = exc.filename or out
                raise LlklError(
                    f"{where}: disk full while building {job.key}; free space and rerun (finished jobs are kept)"
                ) from None
            record_failure(out, job, reason)
            summary.failed[job.key] = reason
            if on_event:
                on_event("failed", job, reason)
            continue
        summary.finished.append(job.key)
        summary.entries_written += len(written or [])
        if on_event:
            on_event("done", job, "")
    return summary
