"""A progress bar on stderr with tokens per second and time left."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from llkl_db.escape import for_terminal


class TokenProgress:
    """Context manager counting scored tokens; silent when disabled."""

    def __init__(self, total: int, enabled: bool = True, description: str = "scoring") -> None:
        self._progress = None
        if enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} tokens"),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
        self._total = total
        self._description = for_terminal(description)  # rich markup: shown literally

    def __enter__(self) -> TokenProgress:
        if self._progress:
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=self._total, rate="")
        return self

    def advance(self, n_tokens: int) -> None:
        if self._progress:
            self._progress.advance(self._task, n_tokens)
            speed = self._progress.tasks[0].speed
            self._progress.update(self._task, rate=f"{speed:,.0f} tok/s" if speed else "")

    def __exit__(self, *exc) -> None:
        if self._progress:
            self._progress.stop()
