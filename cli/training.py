"""Training commands: ``train`` (what a plan's training section asks for) and
``weight-distances`` (squared parameter distances between checkpoints, into a build folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llkl_db.cli.errors import handle_errors
from llkl_db.cli.output import note

Plan = Annotated[str, typer.Option("--plan", help="A plan YAML file or a shipped plan (embedded).")]


@handle_errors
def train(
    plan: Plan = "embedded",
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Runs from scratch trained in parallel (one thread each).")
    ] = 2,
    only: Annotated[
        Optional[list[str]], typer.Option("--only", help="Train only these runs (name or name-seedS).")
    ] = None,
) -> None:
    """Train what a plan's `training:` section lists (tokenizer, small LMs from scratch with
    checkpoints, fine-tunes), into local folders that the plan's models then score. Resumable."""
    from llkl_db.builders.plan import read_plan
    from llkl_db.builders.training.run import train_all
    from llkl_db.builders.training.spec import parse_training

    raw, path = read_plan(plan)
    spec = parse_training(raw.get("training") if isinstance(raw, dict) else None, str(path))
    summary = train_all(spec, jobs=jobs, only=set(only) if only else None, log=note)
    note(f"{len(summary.trained)} trained, {len(summary.skipped)} already done, {summary.seconds:.0f} s -> {spec.out}")


@handle_errors
def weight_distances(
    plan: Plan = "embedded",
    out: Annotated[
        Path, typer.Option("--out", help="Build or dataset folder; writes tables/weight_distances.parquet.")
    ] = Path("llkl-build"),
    window: Annotated[int, typer.Option("--window", help="Pairs each checkpoint with the next WINDOW ones.")] = 10,
) -> None:
    """Squared parameter distances (float64, streamed tensor by tensor) between consecutive and
    windowed checkpoints of every training run in a plan whose checkpoints are local folders."""
    from llkl_db.builders.plan import load_plan
    from llkl_db.builders.weights.from_plan import build_weight_distances
    from llkl_db.errors import BadValueError

    if window < 1:
        raise BadValueError("window", window, "must be at least 1")
    path, added = build_weight_distances(load_plan(plan), out, window=window, log=note)
    note(f"{added} new pair(s) -> {path}")


def register(app: typer.Typer) -> None:
    """Add the training commands to ``app``."""
    app.command()(train)
    app.command("weight-distances")(weight_distances)
