"""Training trajectories (arXiv 2505.15353): KL between consecutive checkpoints and to the final
one, the diffusion exponent from every start, the weight-space exponent beside it, and the KL
between seeds at matching steps."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import polars as pl

from llkl_db.errors import BadValueError, LlklError
from llkl_db.io.tables import WEIGHT_DISTANCES

from .exponent import DEFAULT_WINDOW, MIN_POINTS, window_fits, window_pairs
from .jumps import PAPER_WARMUP_FRACTION, jump_keep_mask
from .pairs import kl_pairs
from .runs import Run, find_runs


@dataclass
class RunTrajectory:
    """One run: per checkpoint KL to the previous and to the final one (bits/byte, with SE), and
    the exponent fits from every start (``fits``: t0, n, c, r2 and, with weights, c_w, r2_w, ratio)."""

    model_id: str
    seed: int | None
    checkpoints: pl.DataFrame
    fits: pl.DataFrame
    has_weights: bool

    def summary(self) -> dict:
        """Median exponent over the starts (and of R^2, and of the weight-space exponent)."""
        out = {"model_id": self.model_id, "seed": self.seed, "n_checkpoints": self.checkpoints.height}
        out["n_fits"] = self.fits.height
        for col in ("c", "r2", "c_w", "r2_w", "ratio"):
            if col in self.fits.columns and self.fits[col].drop_nulls().len():
                out[f"{col}_median"] = float(self.fits[col].drop_nulls().median())
        return out

    def to_dict(self) -> dict:
        return _finite_only(
            {"summary": self.summary(), "checkpoints": self.checkpoints.to_dicts(), "fits": self.fits.to_dicts()}
        )


@dataclass
class Trajectory:
    """The answer of :func:`trajectory`: one :class:`RunTrajectory` per seed, and the KL between
    seeds at the steps they share (``seeds``: step, n_pairs, kl_median, kl_min, kl_max)."""

    model: str
    runs: list[RunTrajectory]
    seeds: pl.DataFrame | None
    window: int
    mean_text_bytes: float
    n_texts: int
    dropped_texts: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> pl.DataFrame:
        return pl.DataFrame([r.summary() for r in self.runs])

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "window": self.window,
            "mean_text_bytes": self.mean_text_bytes,
            "n_texts": self.n_texts,
            "dropped_texts": self.dropped_texts,
            "notes": self.notes,
            "runs": [r.to_dict() for r in self.runs],
            "seeds": self.seeds.to_dicts() if self.seeds is not None else None,
        }


def _finite_only(value):
    """NaN and infinities as None, so that the result is valid JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_only(v) for v in value]
    return value


def _text_bytes(ds) -> np.ndarray:
    return ds.folder.text_set.n_bytes.astype(np.float64)


def _weight_matrix(table: pl.DataFrame | None, run: Run) -> np.ndarray | None:
    """d_w(t_i, t_j) of a run from the weight-distance table (NaN where the pair is missing)."""
    if table is None:
        return None
    rows = table.filter(pl.col("model_id") == run.model_id)
    if rows.height == 0:
        return None
    index = {rev: i for i, rev in enumerate(run.revisions)}
    out = np.full((len(run.revisions),) * 2, np.nan)
    for a, b, d in zip(rows["revision_a"], rows["revision_b"], rows["sq_distance"], strict=True):
        if a in index and b in index:
            out[index[a], index[b]] = out[index[b], index[a]] = d
    return out


def _run_trajectory(
    run: Run, x: np.ndarray, mean_bytes: float, window: int, min_points: int, weights: np.ndarray | None
) -> RunTrajectory:
    n = run.steps.size
    last = n - 1
    wi, wj = window_pairs(n, window)
    ai = np.concatenate([wi, np.arange(n - 1), np.arange(n - 1)])
    bj = np.concatenate([wj, np.arange(1, n), np.full(n - 1, last)])
    kl, se = kl_pairs(x, run.rows[ai], run.rows[bj], mean_bytes)
    dist = np.full((n, n), np.nan)
    sem = np.full((n, n), np.nan)
    dist[ai, bj] = kl
    sem[ai, bj] = se
    prev = [None] + [float(dist[i - 1, i]) for i in range(1, n)]
    prev_se = [None] + [float(sem[i - 1, i]) for i in range(1, n)]
    final = [float(dist[i, last]) for i in range(n - 1)] + [0.0]
    final_se = [float(sem[i, last]) for i in range(n - 1)] + [0.0]
    checkpoints = pl.DataFrame(
        {
            "step": run.steps.tolist(),
            "entry_id": run.entry_ids,
            "kl_prev_bpb": prev,
            "se_prev_bpb": prev_se,
            "kl_final_bpb": final,
            "se_final_bpb": final_se,
        },
        schema_overrides={"kl_prev_bpb": pl.Float64, "se_prev_bpb": pl.Float64},
    )
    if weights is not None:
        checkpoints = checkpoints.with_columns(
            pl.Series("w_sq_prev", [None] + [_finite(weights[i - 1, i]) for i in range(1, n)], dtype=pl.Float64)
        )
    rows = []
    weight_fits = dict(window_fits(run.steps, weights, window, min_points)) if weights is not None else {}
    for i, fit in window_fits(run.steps, dist, window, min_points):
        row = {"t0": int(run.steps[i]), "n": fit.n, "c": fit.c, "r2": fit.r2}
        if weights is not None:
            wf = weight_fits.get(i)
            row["c_w"] = wf.c if wf else None
            row["r2_w"] = wf.r2 if wf else None
            row["ratio"] = fit.c / wf.c if wf and wf.c else None
        rows.append(row)
    schema = {"t0": pl.Int64, "n": pl.Int64, "c": pl.Float64, "r2": pl.Float64}
    if weights is not None:
        schema |= {"c_w": pl.Float64, "r2_w": pl.Float64, "ratio": pl.Float64}
    return RunTrajectory(run.model_id, run.seed, checkpoints, pl.DataFrame(rows, schema=schema), weights is not None)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _seed_table(runs: list[Run], x: np.ndarray, mean_bytes: float) -> pl.DataFrame | None:
    if len(runs) < 2:
        return None
    shared = sorted(set.intersection(*(set(r.steps.tolist()) for r in runs)))
    rows = []
    for step in shared:
        at = [int(r.rows[np.flatnonzero(r.steps == step)[0]]) for r in runs]
        pairs = list(combinations(at, 2))
        kl, _ = kl_pairs(x, np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), mean_bytes)
        rows.append(
            {
                "step": step,
                "n_pairs": len(pairs),
                "kl_median": float(np.median(kl)),
                "kl_min": float(kl.min()),
                "kl_max": float(kl.max()),
            }
        )
    return pl.DataFrame(rows)


def trajectory(
    ds,
    model: str,
    seed: int | None = None,
    window: int = DEFAULT_WINDOW,
    drop_jumps: float = 0.0,
    warmup_step: int | None = None,
    weights: bool | None = None,
    min_points: int = MIN_POINTS,
    include_excluded: bool = False,
) -> Trajectory:
    """The trajectory of ``model`` (a model id; models named MODEL-seedN are its seeds) in the
    dataset view ``ds``.

    ``drop_jumps`` (the papers use ``PAPER_FRACTION``) drops that fraction of texts with the largest jumps
    between consecutive checkpoints from ``warmup_step`` on (default: the paper's 2000/143000 of
    the final step) and recomputes B over the texts kept. ``weights``: True requires the
    weight-distance table, None uses it when present, False ignores it. Checkpoints with an
    ``excluded_reason`` (e.g. the kl-scale release's anomalous seeds) are left out unless
    ``include_excluded``."""
    if window < 1:
        raise BadValueError("window", window, "must be at least 1")
    if not 0.0 <= drop_jumps < 1.0:
        raise BadValueError("drop_jumps", drop_jumps, "expected a fraction in [0, 1)")
    entries = ds.entries
    runs = find_runs(entries, model, seed, include_excluded)
    x = ds.loglik  # clipped, rows of the view
    notes: list[str] = []
    if not include_excluded:
        mine = entries.filter(
            pl.col("model_id").is_in(list({r.model_id for r in runs} | {model.split("@", 1)[0]}))
            | pl.col("model_id").str.contains("^" + re.escape(model.split("@", 1)[0]) + r"-seed\d+$")
        ).filter(pl.col("excluded_reason").is_not_null() & pl.col("step").is_not_null())
        if mine.height:
            notes.append(f"left out {mine.height} checkpoint(s) with an excluded_reason (include them explicitly)")
    nbytes = _text_bytes(ds)
    dropped = 0
    if drop_jumps > 0:
        keep = np.ones(x.shape[1], dtype=bool)
        for run in runs:
            after = warmup_step if warmup_step is not None else PAPER_WARMUP_FRACTION * float(run.steps.max())
            keep &= jump_keep_mask(x[run.rows], run.steps, after, drop_jumps)
        dropped = int((~keep).sum())
        x = x[:, keep]
        nbytes = nbytes[keep]
        notes.append(f"dropped {dropped} of {keep.size} texts with the largest jumps; B = {nbytes.mean():.1f} bytes")
    mean_bytes = float(nbytes.mean())
    table = ds.folder.read_table(WEIGHT_DISTANCES) if weights is not False else None
    results = []
    for run in runs:
        w = _weight_matrix(table, run)
        if weights and w is None:
            where = ds.folder.table_path(WEIGHT_DISTANCES)
            raise LlklError(
                f"no weight distances for {run.model_id} in {where}; build them with `llkl-db weight-distances`"
            )
        results.append(_run_trajectory(run, x, mean_bytes, window, min_points, w))
    return Trajectory(
        model=model,
        runs=results,
        seeds=_seed_table(runs, x, mean_bytes),
        window=window,
        mean_text_bytes=mean_bytes,
        n_texts=int(nbytes.size),
        dropped_texts=dropped,
        notes=notes,
    )
