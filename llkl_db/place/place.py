"""Place a model among a dataset's entries from its log-likelihoods on K of the N texts.

Torch-free: a vector (``text_ids`` and values) in, the nearest entries with KL +- SE, their
relations to the model and a verdict out. The builders score a model on the chosen texts
(``llkl_db.builders.place``); ``place --vector`` reads a shard (``llkl_db.place.shard``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from llkl_db import math as llmath
from llkl_db import relations as rel
from llkl_db.errors import BadValueError, LlklError
from llkl_db.io.vectors import MAX_LOGLIK

from .estimate import (
    MIN_PLACE_TEXTS,
    TARGET_RELATIVE_SE,
    AdaptiveChoice,
    adaptive_texts,
    assisted_variance,
    choose_texts,
    default_text_count,
    kurtosis_ratio,
    subset_variance,
    weighted_variance,
)

SIGNIFICANCE = 0.05  # provenance test level, after the Sidak correction
CONFIDENT = 0.5  # posterior a relation needs for the verdict to name it without hedging


def check_text_count(k: int, n_texts: int) -> None:
    if k < MIN_PLACE_TEXTS:
        raise BadValueError("texts", k, f"need at least {MIN_PLACE_TEXTS} texts for a variance and its SE")
    if k > n_texts:
        raise BadValueError("texts", k, f"more than the dataset's {n_texts} texts")


def suggest_text_count(ds, target: float = TARGET_RELATIVE_SE, sample: int = 64, seed: int = 0) -> int:
    """The K that keeps the SE of nearest distances near ``target`` (10%) of them on ``ds``:
    for up to ``sample`` output entries, the kurtosis of the differences to their nearest entry
    gives the K each needs; the median is returned (see ``estimate.texts_for_relative_se``)."""
    store = ds._store
    rows = ds._rows
    outputs = rows[store.entries[rows]["layer"].is_null().to_numpy()]
    pool = outputs if outputs.size >= 2 else rows
    if pool.size < 2:
        return min(ds.metadata.n_texts, 300)
    rng = np.random.default_rng(seed)
    picked = rng.choice(pool, size=min(sample, pool.size), replace=False)
    prepared = store.prepared
    ratios = []
    for i in picked:
        mask = np.zeros(store.entries.height, dtype=bool)
        mask[pool] = True
        mask[i] = False
        idx, _, _ = llmath.nearest(prepared, prepared.clipped[i], 1, mask)
        if idx.size:
            ratios.append(kurtosis_ratio(prepared.clipped[i], prepared.clipped[idx[0]]))
    return default_text_count(ratios, ds.metadata.n_texts, target)


def texts_to_score(ds, k: int, seed: int = 0) -> np.ndarray:
    """The K text ids of the dataset's text set to score (uniform, without replacement)."""
    n = ds.metadata.n_texts
    check_text_count(k, n)
    return choose_texts(n, k, seed)


SELECTIONS = ("uniform", "adaptive")


def adaptive_choice(ds, k: int, lookup, seed: int = 0) -> tuple[AdaptiveChoice, np.ndarray]:
    """Two-stage adaptive choice of K texts of ``ds`` (see ``estimate.adaptive_texts``):
    ``lookup(ids)`` scores the model on the given text ids (log-likelihoods, nats) and is called
    twice, for the uniform first stage and for the second stage's draws. Returns the choice and
    the model's raw values on its texts."""
    n = ds.metadata.n_texts
    check_text_count(k, n)
    store = ds._store
    threshold = ds.clip_thresholds["outputs"]
    stored = store.clipped[ds._rows]
    raw: dict[int, float] = {}

    def score(ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        todo = np.unique(ids[[int(i) not in raw for i in ids]]) if ids.size else ids
        if todo.size:
            raw.update(zip(todo.tolist(), np.asarray(lookup(todo), dtype=np.float64).tolist(), strict=True))
        return np.maximum(np.array([raw[int(i)] for i in ids]), threshold)

    choice, _ = adaptive_texts(stored, score, n, k, seed)
    return choice, np.array([raw[int(i)] for i in choice.text_ids])


@dataclass(frozen=True)
class Verdict:
    """The best candidate, its relation to the model, and the provenance test."""

    candidate: str | None
    relation: str
    confidence: float
    basis: str
    p_unrelated: float
    p_corrected: float
    n_compared: int
    parent: str | None  # the candidate, when the model is derived from it (or it from the model)
    text: str


@dataclass(frozen=True)
class Placement:
    """The answer of :func:`place`: the nearest entries on K texts, and the verdict."""

    query: str
    n_used: int
    n_texts: int
    table: pl.DataFrame
    verdict: Verdict
    calibration: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "n_texts_used": self.n_used,
            "n_texts": self.n_texts,
            "verdict": self.verdict.__dict__,
            "calibration": self.calibration,
            "notes": self.notes,
            "se_note": "se: against the full-text value (finite-population corrected); se_total: against the "
            "infinite-text value; " + llmath.SE_NOTE,
            "neighbours": self.table.to_dicts(),
        }


ESTIMATORS = ("assisted", "plain")


def rank(
    rows: np.ndarray,
    text_ids: np.ndarray,
    query: np.ndarray,
    mean_bytes: float,
    k: int,
    estimator: str = "assisted",
    weights: np.ndarray | None = None,
    k1: int | None = None,
):
    """Indices of the k rows (E x N clipped values on every text) nearest to ``query`` (clipped
    values on the texts ``text_ids``), with KL, SE against the full-text value, SE against the
    infinite-text value and the paired SE of the difference to the first, in bits/byte, sorted by
    KL. ``estimator``: 'assisted' (the entries nearest to the model predict it on every text:
    ``estimate.assisted_variance``) or 'plain' (the K texts alone: ``estimate.subset_variance``).
    With ``weights`` and ``k1`` (a two-stage adaptive choice: the first ``k1`` columns uniform,
    the rest importance-weighted draws) the weighted estimator is used."""
    n = rows.shape[1]
    if weights is not None and k1 is not None and k1 < text_ids.size:
        est = weighted_variance(rows[:, text_ids], query, weights, k1, n)
    elif estimator == "assisted":
        est = assisted_variance(rows, query, text_ids)
    else:
        est = subset_variance(rows[:, text_ids], query, n)
    kl, se = est.kl_bpb(mean_bytes)
    to_bpb = kl / np.where(est.var > 0, est.var, 1.0) if est.var.size else est.var
    order = np.argsort(kl, kind="stable")[:k]
    pair = np.full(kl.size, np.nan) if est.se_vs_best is None else est.se_vs_best * to_bpb
    return order, kl[order], se[order], (est.se_total * to_bpb)[order], pair[order]


def judge(
    calibration: rel.Calibration,
    name: str,
    candidates: list[str],
    kl: np.ndarray,
    se: np.ndarray,
    n_compared: int,
    query_meta: dict | None = None,
    candidate_meta: list[dict] | None = None,
) -> tuple[list[rel.Relation], Verdict]:
    """Relations of the model to each candidate and the verdict on the best one, with the
    provenance p-value against unrelated pairs (Sidak over ``n_compared`` entries). With the
    model's metadata (``query_meta``, e.g. its model_type) and the candidates', a relation the
    metadata state is used as such; otherwise the calibrated classifier decides from KL."""
    if query_meta is not None and candidate_meta is not None:
        found = [
            rel.relate(calibration, query_meta, m, float(v), float(s))
            for m, v, s in zip(candidate_meta, kl, se, strict=True)
        ]
    else:
        found = [rel.classify(calibration, float(v), float(s)) for v, s in zip(kl, se, strict=True)]
    if not candidates:
        return found, Verdict(None, rel.UNRELATED, 0.0, calibration.source, 1.0, 1.0, 0, None, "no entries to compare")
    top = found[0]
    p, p_corr = rel.provenance_p_value(calibration, float(kl[0]), n_compared)
    stated = top.basis == "metadata" and top.relation in rel.DERIVED
    j = _stated_parent(found, candidate_meta) if stated else 0  # the entry the verdict names and quotes
    best = candidates[j]
    if p_corr >= SIGNIFICANCE:
        if stated:  # never contradict the metadata: say that the data do not confirm them
            text = (
                f"{name}: {top.relation} of {best} according to the metadata; its KL ({kl[j]:.3g} ± {se[j]:.2g} "
                f"bits/byte) does not confirm it: unrelated models come as close (p = {p_corr:.2g} after Sidak "
                f"over {n_compared} entries)"
            )
            return found, Verdict(best, top.relation, top.confidence, top.basis, p, p_corr, n_compared, best, text)
        text = (
            f"{name} is not closer to any entry than unrelated models are (nearest {best}, "
            f"p = {p_corr:.2g} after Sidak over {n_compared} entries): no parent in this dataset"
        )
        return found, Verdict(best, top.relation, top.confidence, top.basis, p, p_corr, n_compared, None, text)
    parent = best if top.relation in rel.DERIVED else None
    hedge = "" if top.confidence >= CONFIDENT else " (uncertain)"
    second = sorted(top.posterior.items(), key=lambda kv: -kv[1])[1] if len(top.posterior) > 1 else None
    alt = f"; next: {second[0]} {second[1]:.0%}" if second else ""
    text = (
        f"{name}: {top.relation} of {best}{hedge}, confidence {top.confidence:.0%}{alt} "
        f"(KL {kl[j]:.3g} ± {se[j]:.2g} bits/byte; unrelated: p = {p_corr:.2g}, Sidak over {n_compared} entries; "
        f"calibration: {top.basis})"
    )
    return found, Verdict(best, top.relation, top.confidence, top.basis, p, p_corr, n_compared, parent, text)


def _stated_parent(found: list[rel.Relation], candidate_meta: list[dict] | None) -> int:
    """Which candidate a metadata-stated derivation names: the nearest, or when that is a
    quantized or cast copy (a variant) of a checkpoint, the checkpoint's own entry if it is among
    the candidates with the same relation (a fine-tune of X, not of X's Q5_0)."""
    if not candidate_meta or candidate_meta[0].get("variant") is None:
        return 0
    first = candidate_meta[0]
    for j, (m, f) in enumerate(zip(candidate_meta, found, strict=True)):
        same_checkpoint = m["model_id"] == first["model_id"] and m.get("revision") == first.get("revision")
        if same_checkpoint and m.get("variant") is None and f.basis == "metadata" and f.relation == found[0].relation:
            return j
    return 0


def place(
    ds,
    text_ids: np.ndarray,
    loglik: np.ndarray,
    k: int = 10,
    name: str = "MODEL",
    meta: dict | None = None,
    choice: AdaptiveChoice | None = None,
    estimator: str = "assisted",
) -> Placement:
    """Place a model with log-likelihoods ``loglik`` (nats) on the texts ``text_ids`` of the
    dataset's text set among the entries of ``ds`` (a view: ``--where`` selects the candidates).
    ``meta``: the model's metadata when known (model_id, model_type, base_model, ...), so that
    no relation label contradicts it. ``choice``: the two-stage adaptive choice the texts come
    from (``text_ids`` is then ``choice.text_ids``, repeats allowed), for its weighted estimator. ``estimator``: see :func:`rank`."""
    if k < 1:
        raise BadValueError("k", k, "must be at least 1")
    if estimator not in ESTIMATORS:
        raise BadValueError("estimator", estimator, f"expected one of {', '.join(ESTIMATORS)}")
    n = ds.metadata.n_texts
    ids = np.asarray(text_ids, dtype=np.int64)
    values = np.asarray(loglik, dtype=np.float64)
    if ids.shape != values.shape or ids.ndim != 1:
        raise LlklError(f"{ids.size} text ids for {values.size} log-likelihoods")
    check_text_count(int(ids.size), n)
    if choice is not None and not np.array_equal(ids, choice.text_ids):
        raise LlklError("the text ids are not those of the adaptive choice")
    repeats = choice is None and np.unique(ids).size != ids.size
    if ids.min() < 0 or ids.max() >= n or repeats:
        raise LlklError(f"text ids must be distinct and lie in 0..{n - 1}")
    if not np.isfinite(values).all():
        raise LlklError("the vector has non-finite log-likelihoods (NaN or inf)")
    if (values > MAX_LOGLIK).any():
        raise LlklError("the vector has positive log-likelihoods; a log-likelihood is at most 0")
    if len(ds) == 0:
        raise LlklError("no entries to compare with (the filter keeps none)")
    store = ds._store
    threshold = ds.clip_thresholds["outputs"]
    query = np.maximum(values, threshold)
    rows = store.clipped[ds._rows]
    mean_bytes = ds.metadata.mean_text_bytes
    weights, k1 = (None, None) if choice is None else (choice.weights, choice.k1)
    order, kl, se, se_total, se_pair = rank(rows, ids, query, mean_bytes, k, estimator, weights, k1)
    positions = ds._rows[order]
    shown = store.entries[positions].select("entry_id", "model_type", "n_params")
    calibration = ds.calibration
    columns = ["model_id", "revision", "layer", "variant", "base_model", "model_type"]
    query_meta = None
    if meta is not None and meta.get("model_id"):
        query_meta = {c: meta.get(c) for c in columns}
        query_meta["revision"] = query_meta["revision"] or "main"
    candidate_meta = store.entries[positions].select(columns).to_dicts()
    candidates = store.entries[positions]["entry_id"].to_list()
    found, verdict = judge(calibration, name, candidates, kl, se, len(ds), query_meta, candidate_meta)
    to_nats = mean_bytes * llmath.kl.LN2
    table = shown.with_columns(
        pl.Series("kl_bpb", kl),
        pl.Series("se_bpb", se),
        pl.Series("se_total_bpb", se_total),
        pl.Series("se_vs_first_bpb", se_pair),
        pl.Series("kl_nats", kl * to_nats),
        pl.Series("se_nats", se * to_nats),
        pl.Series("relation", [f.relation for f in found], dtype=pl.String),
        pl.Series("confidence", [f.confidence for f in found], dtype=pl.Float64),
    ).with_row_index("rank", offset=1)
    notes = []
    if calibration.source != "dataset":
        notes.append(calibration.describe())
    if kl.size >= 2 and kl[1] - kl[0] < 2.0 * se_pair[1]:
        notes.append(
            f"the nearest two are a tie at {ids.size} texts: {kl[1] - kl[0]:.3g} ± {se_pair[1]:.2g} bits/byte apart "
            "(paired SE, same texts); more texts may swap them"
        )
    if choice is not None:
        notes.append(
            f"adaptive choice: {choice.k1} uniform texts, then {ids.size - choice.k1} drawn where the nearest "
            "entries disagree (importance-weighted, unbiased)"
        )
    return Placement(name, int(ids.size), n, table, verdict, calibration.describe(), notes)
