"""A progress bar on stderr with tokens per second and time left.

Rich's own speed and time-left columns average over the last 30 seconds of updates, so on a slow
CPU, where one batch takes longer than that, they never show an estimate. These columns use the
whole run instead: rate = tokens so far / elapsed, time left = tokens to go / rate, from the
first batch on.
"""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from llkl_db.escape import for_terminal


def whole_run_rate(task: Task) -> float | None:
    """Tokens per second since the task started, or None before the first update."""
    elapsed = task.elapsed
    if not task.completed or not elapsed:
        return None
    return task.completed / elapsed


class RateColumn(ProgressColumn):
    """Tokens per second over the whole run."""

    def render(self, task: Task) -> Text:
        rate = whole_run_rate(task)
        return Text(f"{rate:,.0f} tok/s" if rate else "", style="progress.data.speed")


class TimeLeftColumn(ProgressColumn):
    """Time left at the whole run's rate ('-:--:--' before the first batch)."""

    max_refresh = 0.5

    def render(self, task: Task) -> Text:
        rate = whole_run_rate(task)
        if task.finished:
            return Text("0:00:00", style="progress.remaining")
        if not rate or task.total is None:
            return Text("-:--:--", style="progress.remaining")
        left = max(task.total - task.completed, 0) / rate
        return Text(str(timedelta(seconds=round(left))), style="progress.remaining")


class TokenProgress:
    """Context manager counting scored tokens; silent when disabled."""

    def __init__(self, total: int, enabled: bool = True, description: str = "scoring") -> None:
        self._progress = None
        if enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} tokens"),
                RateColumn(),
                TimeLeftColumn(),
                console=Console(stderr=True),
                transient=True,
            )
        self._total = total
        self._description = for_terminal(description)  # rich markup: shown literally

    def __enter__(self) -> TokenProgress:
        if self._progress:
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=self._total)
        return self

    def advance(self, n_tokens: int) -> None:
        if self._progress:
            self._progress.advance(self._task, n_tokens)

    def __exit__(self, *exc) -> None:
        if self._progress:
            self._progress.stop()
