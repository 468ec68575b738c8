"""A 2-D map of the entries of a dataset from its double-centred matrix (PCA or t-SNE), with the
checkpoints of each training run joined in step order."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from llkl_db import math as llmath
from llkl_db.errors import BadValueError, LlklError
from llkl_db.memory import require_memory

from .colors import assign
from .embedding import pca, tsne_auto

METHODS = ("pca", "tsne")
DERIVED = {
    "kind": "checkpoint, variant, layer or model",
    "source": "organisation of the model id (before '/')",
    "family": "model id without size and seed",
}


@dataclass
class EntryMap:
    """Coordinates, colours and run lines of a map."""

    entry_ids: list[str]
    xy: np.ndarray
    color_by: str
    values: list
    colours: list[str]
    legend: list[tuple[str, str]]
    numeric: bool
    runs: list[list[int]]  # indices of each run's checkpoints in step order
    method: str
    method_note: str = ""  # which implementation ran (t-SNE: openTSNE or the numpy fallback)
    colourings: dict[str, list] = field(default_factory=dict)  # name -> one value per entry
    # per entry: its k nearest entries of the view as (index, kl_bpb, se_bpb, level), as nearest gives them
    neighbours: list[list[tuple[int, float, float, str]]] | None = None

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "method_note": self.method_note,
            "color_by": self.color_by,
            "points": [
                {"entry_id": e, "x": float(x), "y": float(y), self.color_by: v}
                for e, (x, y), v in zip(self.entry_ids, self.xy, self.values, strict=True)
            ],
            "runs": [[self.entry_ids[i] for i in run] for run in self.runs],
        }


def _color_values(entries: pl.DataFrame, color: str) -> list:
    from .settings import family_of

    if color == "kind":
        return [
            "layer"
            if r["layer"] is not None
            else "variant"
            if r["variant"]
            else "checkpoint"
            if r["step"] is not None
            else "model"
            for r in entries.iter_rows(named=True)
        ]
    if color == "source":
        return [m.split("/", 1)[0] if "/" in m else "(local)" for m in entries["model_id"].to_list()]
    if color == "family":
        return [family_of(m) for m in entries["model_id"].to_list()]
    if color not in entries.columns or entries[color].dtype == pl.List:
        known = [c for c in entries.columns if c not in ("loglik", "n_tokens")] + list(DERIVED)
        raise BadValueError("color", color, f"not a column; use one of {', '.join(known)}")
    return entries[color].to_list()


def _runs(entries: pl.DataFrame) -> list[list[int]]:
    frame = entries.with_row_index("_i").filter(
        pl.col("step").is_not_null() & pl.col("layer").is_null() & pl.col("variant").is_null()
    )
    runs = []
    for _, group in frame.group_by("model_id", maintain_order=True):
        if group.height >= 2:
            runs.append(group.sort("step")["_i"].to_list())
    return runs


EXPLORER_COLOURINGS = ("family", "model_type", "kind")


def _score_colourings(ds, entries: pl.DataFrame) -> dict[str, list]:
    """One colouring per benchmark score of the dataset's model_scores table (by model id)."""
    from llkl_db.io.scores import read_scores

    try:
        table = read_scores(ds.root)
    except LlklError:
        return {}
    out = {}
    models = entries["model_id"].to_list()
    for score in sorted(table["score"].unique().drop_nulls().to_list()):
        rows = table.filter((pl.col("score") == score) & pl.col("value").is_not_null() & pl.col("value").is_finite())
        values = dict(zip(rows["model_id"].to_list(), rows["value"].to_list(), strict=True))
        if any(m in values for m in models):
            out[f"score: {score}"] = [values.get(m) for m in models]
    return out


def neighbour_lists(ds, k: int = 10, block: int = 512) -> list[list[tuple[int, float, float, str]]]:
    """Each entry's ``k`` nearest entries of the view, as :meth:`Dataset.nearest` gives them
    (same candidates, order, values and level): (index in the view, kl_bpb, se_bpb, level).

    Batched: one float32 matrix product per block of queries finds, for each, the candidates
    within the rounding bound of its k-th distance (as :func:`llkl_db.math.nearest` does), then
    the exact float64 variances of those from the clipped rows rank them; so a 20,000-entry view
    takes seconds, not a call to ``nearest`` per entry."""
    clipped = np.ascontiguousarray(ds.loglik, dtype=np.float32)
    n_rows, n_texts = clipped.shape
    kk = min(k, n_rows - 1)
    if kk < 1:
        return [[] for _ in range(n_rows)]
    prepared = llmath.prepare_clipped(clipped)
    centered, norms = prepared.centered, prepared.sq_norms
    eps = 8.0 * np.sqrt(n_texts) * np.finfo(np.float32).eps  # the bound of llkl_db.math.nearest
    mean_bytes = ds.metadata.mean_text_bytes
    positions = ds.positions()
    out: list[list[tuple[int, float, float, str]]] = []
    for start in range(0, n_rows, block):
        rows = np.arange(start, min(start + block, n_rows))
        dots = (centered[rows] @ centered.T).astype(np.float64)
        dist = norms[rows, None] + norms[None, :] - 2.0 * dots
        bound = eps * (norms[rows, None] + norms[None, :])
        dist[np.arange(rows.size), rows] = np.inf  # not the query itself
        upper = np.partition(dist + bound, kk - 1, axis=1)[:, kk - 1]
        for r, q in enumerate(rows):
            pool = np.flatnonzero(dist[r] - bound[r] <= upper[r])
            var, se_var = llmath.variance_with_se(clipped[pool].astype(np.float64) - clipped[q].astype(np.float64))
            order = np.argsort(var, kind="stable")[:kk]
            est = llmath.from_variance(var[order], se_var[order], mean_bytes)
            kl, se = np.atleast_1d(est.kl_bpb), np.atleast_1d(est.se_bpb)
            found = ds.relations(int(positions[q]), positions[pool[order]], kl, se)
            out.append(
                [
                    (int(j), float(v), float(s), r.relation)
                    for j, v, s, r in zip(pool[order], kl, se, found, strict=True)
                ]
            )
    return out


def entry_map(
    ds,
    method: str = "pca",
    color: str = "model_type",
    perplexity: float = 30.0,
    seed: int = 0,
    neighbours: int = 0,
) -> EntryMap:
    """The map of the dataset view ``ds``: PCA (fast default) or t-SNE of the double-centred
    log-likelihood matrix (squared distances proportional to KL), coloured by ``color`` (any
    metadata column, or kind, source, family). With ``neighbours=k`` each entry also carries its
    k nearest entries (for the HTML explorer); the family, model type, kind and every benchmark
    score of the dataset are kept as alternative colourings."""
    if method not in METHODS:
        raise BadValueError("method", method, f"use one of {', '.join(METHODS)}")
    if len(ds) < 2:
        raise LlklError(f"a map needs at least two entries, this view has {len(ds)}")
    entries = ds.entries
    values = _color_values(entries, color)
    k, n = len(ds), ds.metadata.n_texts
    # the clipped matrix, its copy and centred copy (float32), PCA's float64 copy and SVD factor,
    # and the K x K matrices of the Gram route or of t-SNE
    need = k * n * 28 + (3 * k * k * 8 if method == "tsne" or k <= n else 0)
    require_memory(need, f"the {method} map of {k} entries x {n} texts")
    centered = llmath.prepare_clipped(ds.loglik.copy()).centered
    if method == "pca":
        xy, method_note = pca(centered), "PCA (numpy)"
    else:
        xy, method_note = tsne_auto(centered, perplexity=perplexity, seed=seed)
    colours, legend, numeric = assign(values)
    colourings = {name: _color_values(entries, name) for name in EXPLORER_COLOURINGS}
    colourings[color] = values
    colourings.update(_score_colourings(ds, entries))
    return EntryMap(
        entries["entry_id"].to_list(),
        xy,
        color,
        values,
        colours,
        legend,
        numeric,
        _runs(entries),
        method,
        method_note,
        colourings,
        neighbour_lists(ds, neighbours) if neighbours > 0 else None,
    )
