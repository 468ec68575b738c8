"""Weight distances for every training run of a plan whose checkpoints are local folders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from llkl_db.builders.plan import Plan
from llkl_db.errors import LlklError
from llkl_db.io.folder import DatasetFolder
from llkl_db.io.tables import WEIGHT_DISTANCES, read_weight_distances, upsert_weight_distances

from .pairs import Checkpoint, weight_distance_rows


def plan_runs(plan: Plan) -> dict[str, list[Checkpoint]]:
    """model_id -> its checkpoints (jobs with a step, reference variant, a local folder source)."""
    runs: dict[str, list[Checkpoint]] = defaultdict(list)
    for job in plan.jobs:
        if job.training_step is None or job.variant is not None or not job.source:
            continue
        folder = Path(job.source)
        if job.source.startswith("offline:") or folder.suffix == ".gguf":
            continue
        runs[job.model_id].append(Checkpoint(job.revision, job.training_step, folder))
    return {model: cps for model, cps in runs.items() if len(cps) >= 2}


def build_weight_distances(
    plan: Plan, out: Path, window: int = 10, log: Callable[[str], None] = print
) -> tuple[Path, int]:
    """Compute the missing consecutive and windowed pairs of every run of ``plan`` and add them
    to ``out/tables/weight_distances.parquet`` (one run at a time, so an interrupted build keeps
    the finished runs). Returns the table path and the number of new rows."""
    runs = plan_runs(plan)
    if not runs:
        raise LlklError(f"{plan.path or 'plan'}: no training run with local checkpoint folders")
    missing = [str(c.folder) for cps in runs.values() for c in cps if not c.folder.is_dir()]
    if missing:
        raise LlklError(
            f"{missing[0]}: no such checkpoint folder ({len(missing)} missing); train first (llkl-db train)"
        )
    existing = read_weight_distances(out)
    added = 0
    path = DatasetFolder(out).table_path(WEIGHT_DISTANCES)
    for model_id, checkpoints in runs.items():
        done = set()
        if existing is not None:
            rows = existing.filter(existing["model_id"] == model_id)
            done = set(zip(rows["revision_a"].to_list(), rows["revision_b"].to_list(), strict=True))
        rows = weight_distance_rows(model_id, checkpoints, window, skip=done)
        if rows:
            path = upsert_weight_distances(out, rows)
            added += len(rows)
        log(f"{model_id}: {len(rows)} new pair(s), {len(done)} already there")
    return path, added
