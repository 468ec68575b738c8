"""Training runs in a dataset: the checkpoints (entries with a step) of a model and its seeds."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from llkl_db.errors import LlklError, UnknownEntryError
from llkl_db.resolve import _unknown_message

SEED_SUFFIX = re.compile(r"-seed(\d+)$")


@dataclass(frozen=True)
class Run:
    """One training run: its model id, seed, and checkpoints in step order (rows of a view)."""

    model_id: str
    seed: int | None
    rows: np.ndarray
    steps: np.ndarray
    revisions: list[str]
    entry_ids: list[str]


def seed_of(model_id: str, seed: int | None) -> int | None:
    """The seed recorded for an entry, else the one in a '-seedN' model-id suffix."""
    if seed is not None:
        return int(seed)
    match = SEED_SUFFIX.search(model_id)
    return int(match.group(1)) if match else None


def seed_group(model_id: str) -> str:
    """The model id without a '-seedN' suffix: seeds of one model share it."""
    return SEED_SUFFIX.sub("", model_id)


def find_runs(entries: pl.DataFrame, name: str, seed: int | None = None, include_excluded: bool = False) -> list[Run]:
    """The runs of ``name`` among ``entries``: the model itself and models named NAME-seedN,
    each with its output-layer, reference-precision entries that have a step (those with an
    ``excluded_reason`` left out unless ``include_excluded``).

    Raises a clear error for an unknown name, a model without checkpoints, a seed that is
    not there, or a run with a single checkpoint."""
    model = name.split("@", 1)[0]
    frame = entries.with_row_index("_row")
    pattern = "^" + re.escape(model) + r"(-seed\d+)?$"
    mine = frame.filter(pl.col("model_id").str.contains(pattern))
    if mine.height == 0:
        raise UnknownEntryError(_unknown_message(entries, name))
    checkpoints = mine.filter(pl.col("step").is_not_null() & pl.col("layer").is_null() & pl.col("variant").is_null())
    if checkpoints.height == 0:
        raise LlklError(f"{model} has no checkpoints (entries with a step) in this dataset; a trajectory needs them")
    if not include_excluded:
        checkpoints = checkpoints.filter(pl.col("excluded_reason").is_null())
        if checkpoints.height == 0:
            raise LlklError(f"{model}: every checkpoint has an excluded_reason; include them explicitly to use them")
    runs = []
    for (model_id,), group in checkpoints.group_by("model_id", maintain_order=True):
        group = group.sort("step")
        recorded = group["seed"].drop_nulls()
        run_seed = seed_of(model_id, recorded[0] if recorded.len() else None)
        runs.append(
            Run(
                model_id=model_id,
                seed=run_seed,
                rows=group["_row"].to_numpy().astype(np.int64),
                steps=group["step"].to_numpy().astype(np.int64),
                revisions=group["revision"].to_list(),
                entry_ids=group["entry_id"].to_list(),
            )
        )
    if seed is not None:
        runs = [r for r in runs if r.seed == seed]
        if not runs:
            raise LlklError(f"{model}: no run with seed {seed}")
    runs.sort(key=lambda r: (r.seed if r.seed is not None else -1, r.model_id))
    for run in runs:
        if run.steps.size < 2:
            raise LlklError(
                f"{run.model_id} has a single checkpoint (step {int(run.steps[0])}); a trajectory needs two or more"
            )
        if np.unique(run.steps).size != run.steps.size:
            raise LlklError(f"{run.model_id}: several checkpoint entries share a step")
    return runs
