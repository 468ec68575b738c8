"""The settings of the KL scale (arXiv 2505.15353), as pairs of entries of a dataset.

Pure functions of the entries' metadata (a Polars frame): which pairs of rows belong to which
setting. How each setting is recognised:

- checkpoints of a run: the entries of one model_id with a step (output layer, reference
  precision), consecutive in step order; *early* when the later step is at most 1/10 of the
  run's final step, *late* when the earlier one is at least half of it;
- seeds: the final entries of models whose ids differ only by a '-seedN' suffix;
- variants: an entry with a variant against the same model and revision without one, grouped by
  bit width (q8_0, bnb-8bit: 8-bit; q4_0, bnb-4bit: 4-bit; ...) or by dtype (bfloat16, float16);
- fine-tunes: a model whose base_model is another model of the dataset, final entries;
- sizes within a family: final entries of one model type whose ids are equal once the size
  ('-135M', '-1.4b') and seed are taken out, with different parameter counts;
- same model type / any two models: final entries of different families (ids without size and
  seed), of the same model type / of any type, a fine-tune and its parent left out;
- adjacent layers: logit-lens entries of one model and revision next to each other in layer
  order, the output counted as the last layer.

"Final entry" of a model: its output layer in reference precision at revision main (or an
import's 'unknown'; else its
largest step, else its first entry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from llkl_db.resolve import FINAL_REVISIONS
from llkl_db.variants import describe_variant, variant_setting

from .runs import seed_group

EARLY_FRACTION = 0.1
LATE_FRACTION = 0.5
_SIZE = re.compile(r"[-_]\d+(\.\d+)?[kmbt](?=$|[-_])", re.IGNORECASE)

# Setting names in table order; those of method.md share its wording (see llkl_db.scale).
CONSECUTIVE_LATE = "consecutive late checkpoints"
CONSECUTIVE_EARLY = "consecutive early checkpoints"
SEEDS = "random seeds"
FINE_TUNE = "fine-tuned child vs parent"
SIZES = "model sizes within a family"
SAME_TYPE = "same model type"
ANY = "any two models"
ADJACENT_LAYERS = "adjacent layers"


@dataclass(frozen=True)
class Pairs:
    """Row pairs (a, b) of one setting."""

    a: np.ndarray
    b: np.ndarray

    @property
    def size(self) -> int:
        return int(self.a.size)


def family_of(model_id: str) -> str:
    """The model id lower-cased without a '-seedN' suffix and without size tokens ('-410m')."""
    return _SIZE.sub("", seed_group(model_id)).lower()


def final_entries(entries: pl.DataFrame) -> pl.DataFrame:
    """One row per model (with its row index ``_row``): see the module docstring."""
    frame = entries.with_row_index("_row").filter(pl.col("layer").is_null() & pl.col("variant").is_null())
    ranked = frame.with_columns(
        (pl.col("revision").is_in(FINAL_REVISIONS)).alias("_main"),
        pl.col("step").fill_null(-1).alias("_step"),
    ).sort(["model_id", "_main", "_step", "_row"], descending=[False, True, True, False])
    return ranked.group_by("model_id", maintain_order=True).first().drop("_main", "_step")


def _pairs(a: list[int], b: list[int]) -> Pairs:
    return Pairs(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))


def checkpoint_pairs(entries: pl.DataFrame) -> dict[str, Pairs]:
    """Consecutive checkpoints of every run, split into early and late."""
    frame = entries.with_row_index("_row").filter(
        pl.col("step").is_not_null() & pl.col("layer").is_null() & pl.col("variant").is_null()
    )
    early: tuple[list[int], list[int]] = ([], [])
    late: tuple[list[int], list[int]] = ([], [])
    for _, group in frame.group_by("model_id", maintain_order=True):
        group = group.sort("step")
        steps, rows = group["step"].to_list(), group["_row"].to_list()
        final = steps[-1]
        for i in range(len(steps) - 1):
            if steps[i + 1] <= EARLY_FRACTION * final:
                early[0].append(rows[i])
                early[1].append(rows[i + 1])
            elif steps[i] >= LATE_FRACTION * final:
                late[0].append(rows[i])
                late[1].append(rows[i + 1])
    return {CONSECUTIVE_LATE: _pairs(*late), CONSECUTIVE_EARLY: _pairs(*early)}


def variant_pairs(entries: pl.DataFrame) -> dict[str, Pairs]:
    """Each variant against the same model, revision and layer in reference precision."""
    frame = entries.with_row_index("_row")
    originals = frame.filter(pl.col("variant").is_null()).select(
        "model_id", "revision", pl.col("layer").fill_null(-1).alias("_layer"), pl.col("_row").alias("_orig")
    )
    variants = frame.filter(pl.col("variant").is_not_null() & pl.col("layer").is_null()).with_columns(
        pl.col("layer").fill_null(-1).alias("_layer")
    )
    joined = variants.join(originals, on=["model_id", "revision", "_layer"], how="inner")
    out: dict[str, tuple[list[int], list[int]]] = {}
    order: dict[str, tuple[int, str]] = {}
    for variant, orig, row in zip(joined["variant"], joined["_orig"], joined["_row"], strict=True):
        setting = variant_setting(variant)
        a, b = out.setdefault(setting, ([], []))
        a.append(orig)
        b.append(row)
        order[setting] = _variant_order(variant, setting)
    return {name: _pairs(*ab) for name, ab in sorted(out.items(), key=lambda kv: order[kv[0]])}


def _variant_order(variant: str, setting: str) -> tuple[int, str]:
    """Quantizations by falling bit width, then casts and variants of unknown width by name."""
    v = describe_variant(variant)
    return (-v.bits if v.kind != "cast" else 0, setting)


ALL_PAIRS_UP_TO = 3_000  # models: up to this many, every pair is enumerated (4.5 M pairs)
SAMPLED_CROSS_PAIRS = 200_000  # beyond it, pairs of different families are sampled


def model_pairs(entries: pl.DataFrame, seed: int = 0) -> dict[str, Pairs]:
    """Seeds, fine-tunes, sizes within a family, same type and any two models (final entries).

    Pairs within a family are all enumerated. Pairs across families (same type, any two models)
    are too up to ALL_PAIRS_UP_TO models; beyond, SAMPLED_CROSS_PAIRS of them are drawn at random,
    so that the work stays linear in the number of models."""
    final = final_entries(entries)
    rows = final["_row"].to_numpy().astype(np.int64)
    ids = final["model_id"].to_list()
    n = len(ids)
    group = _codes([seed_group(m) for m in ids])
    family = _codes([family_of(m) for m in ids])
    mtype = _codes(final["model_type"].to_list())  # None is a code of its own
    typed = np.array([t is not None for t in final["model_type"].to_list()], dtype=bool)
    params = final["n_params"].cast(pl.Float64).to_numpy()
    by_id = {m: i for i, m in enumerate(ids)}
    tuned_a, tuned_b = [], []
    for i, base in enumerate(final["base_model"].to_list()):
        if base and base in by_id and base != ids[i]:
            tuned_a.append(by_id[base])
            tuned_b.append(i)
    tuned = {(min(a, b), max(a, b)) for a, b in zip(tuned_a, tuned_b, strict=True)}

    if n <= ALL_PAIRS_UP_TO:
        i, j = np.triu_indices(n, 1)
    else:
        within = [np.triu_indices(len(m), 1) for m in _members(family)]
        members = _members(family)
        i = np.concatenate([m[a] for m, (a, _) in zip(members, within, strict=True)] + [np.empty(0, np.int64)])
        j = np.concatenate([m[b] for m, (_, b) in zip(members, within, strict=True)] + [np.empty(0, np.int64)])
        si, sj = _cross_family_sample(family, SAMPLED_CROSS_PAIRS, seed)
        i, j = np.concatenate([i, si]), np.concatenate([j, sj])
        order = np.lexsort((j, i))
        i, j = i[order], j[order]
    seeds = group[i] == group[j]
    tuned_keys = np.array([a * n + b for a, b in tuned], dtype=np.int64)
    is_tuned = np.isin(i * n + j, tuned_keys)
    rest = ~seeds & ~is_tuned
    same_family = family[i] == family[j]
    same_params = (params[i] == params[j]) | (np.isnan(params[i]) & np.isnan(params[j]))
    sizes = rest & same_family & (mtype[i] == mtype[j]) & ~same_params
    cross = rest & ~same_family
    same_type = cross & typed[i] & (mtype[i] == mtype[j])
    out = {
        SEEDS: Pairs(rows[i[seeds]], rows[j[seeds]]),
        FINE_TUNE: Pairs(rows[np.asarray(tuned_a, dtype=np.int64)], rows[np.asarray(tuned_b, dtype=np.int64)]),
        SIZES: Pairs(rows[i[sizes]], rows[j[sizes]]),
        SAME_TYPE: Pairs(rows[i[same_type]], rows[j[same_type]]),
        ANY: Pairs(rows[i[cross]], rows[j[cross]]),
    }
    return out


def _codes(values: list) -> np.ndarray:
    """An integer per value, equal for equal values (None included)."""
    seen: dict = {}
    return np.array([seen.setdefault(v, len(seen)) for v in values], dtype=np.int64)


def _members(codes: np.ndarray) -> list[np.ndarray]:
    """The positions holding each code, in increasing order."""
    order = np.argsort(codes, kind="stable")
    splits = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, splits) if codes.size else []


def _cross_family_sample(family: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` distinct pairs i < j of different families, drawn uniformly."""
    rng = np.random.default_rng(seed)
    n = family.size
    found: set[tuple[int, int]] = set()
    for _ in range(20):
        if len(found) >= count:
            break
        a = rng.integers(0, n, size=2 * count)
        b = rng.integers(0, n, size=2 * count)
        keep = (a != b) & (family[a] != family[b])
        lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
        for pair in zip(lo.tolist(), hi.tolist(), strict=True):
            found.add(pair)
            if len(found) >= count:
                break
    if not found:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pairs = np.array(sorted(found), dtype=np.int64)
    return pairs[:, 0], pairs[:, 1]


def layer_pairs(entries: pl.DataFrame) -> dict[str, Pairs]:
    """Adjacent logit-lens layers of each model and revision, the output as the last layer."""
    frame = entries.with_row_index("_row").filter(pl.col("variant").is_null())
    with_layers = frame.filter(pl.col("layer").is_not_null()).select("model_id", "revision").unique()
    a: list[int] = []
    b: list[int] = []
    mine = frame.join(with_layers, on=["model_id", "revision"], how="inner")
    for _, group in mine.group_by("model_id", "revision", maintain_order=True):
        group = group.with_columns(pl.col("layer").fill_null(10**9).alias("_order")).sort("_order")
        rows = group["_row"].to_list()
        a.extend(rows[:-1])
        b.extend(rows[1:])
    return {ADJACENT_LAYERS: _pairs(a, b)}


def setting_pairs(entries: pl.DataFrame) -> dict[str, Pairs]:
    """Every setting present in ``entries`` and its row pairs, in the order of the scale table
    (settings without pairs are left out)."""
    out: dict[str, Pairs] = {}
    out.update(checkpoint_pairs(entries))
    models = model_pairs(entries)
    out[SEEDS] = models.pop(SEEDS)
    out.update(variant_pairs(entries))
    out.update(models)
    out.update(layer_pairs(entries))
    return {name: pairs for name, pairs in out.items() if pairs.size}


# --- the definitions of the kl-scale release (arXiv 2505.15353, its kl-scale/src/calc_kl.py) ---
KLSCALE_CONTRIBUTOR = "shimo-lab/modelmap kl-scale (Kishino et al., arXiv:2505.15353)"
DEFINITIONS = ("auto", "llkl", "kl-scale")
KLSCALE_INTERVAL = 1000  # pretraining: consecutive checkpoints one thousand steps apart
KLSCALE_AFTER_STEP = 2000  # ... ending after step 2,000
KLSCALE_N_INTERVALS = 50  # the first and the last 50 of them, per size
KLSCALE_WARMUP_STEP = 2000  # preprocessing: jumps count between checkpoints from this step on
KLSCALE_CLIP_FRACTION = 0.02  # preprocessing: clip at this quantile of the runs' values
KLSCALE_DROP_FRACTION = 0.03  # preprocessing: drop this fraction of texts with the largest jumps
PRETRAINING_EARLY = "pretraining, first 50 intervals"
PRETRAINING_LATE = "pretraining, last 50 intervals"
KLSCALE_SIZES = "Pythia sizes, final step"
_PYTHIA = r"^EleutherAI/pythia-\d+(\.\d+)?[mb]"
_SEED_RUN = r"^EleutherAI/pythia-410m-seed\d+$"


@dataclass(frozen=True)
class RunGroup:
    """Checkpoint rows of the runs one preprocessing covers: ``rows``/``steps`` per run id, and the
    rows left out of it (``excluded``), which still sit in the step order of their run."""

    runs: dict[str, tuple[list[int], list[int]]]
    excluded: frozenset[int]


def is_klscale_import(entries: pl.DataFrame) -> bool:
    """Whether ``entries`` come from an import of the kl-scale release (their contributor says so)."""
    return bool(entries["contributor"].fill_null("").str.starts_with(KLSCALE_CONTRIBUTOR).any())


def _checkpoints(entries: pl.DataFrame) -> pl.DataFrame:
    frame = entries.with_row_index("_row")
    return frame.filter(
        pl.col("step").is_not_null()
        & pl.col("layer").is_null()
        & pl.col("variant").is_null()
        & pl.col("model_id").str.contains(_PYTHIA)
    )


def klscale_run_groups(entries: pl.DataFrame, include_excluded: bool = False) -> dict[str, RunGroup]:
    """The two groups the release preprocesses apart: 'main' (each size's run without a seed
    suffix) and 'seeds' (the 410m -seedN runs; runs flagged as excluded left out entirely)."""
    frame = _checkpoints(entries)
    flagged = (
        frame["excluded_reason"].is_not_null() if not include_excluded else pl.repeat(False, frame.height, eager=True)
    )
    frame = frame.with_columns(flagged.alias("_flagged"))
    out = {}
    for name, members in (
        ("main", frame.filter(~pl.col("model_id").str.contains(r"-seed\d+$"))),
        ("seeds", frame.filter(pl.col("model_id").str.contains(_SEED_RUN))),
    ):
        runs, excluded = {}, set()
        for (model_id,), group in members.group_by("model_id", maintain_order=True):
            group = group.sort("step")
            if name == "seeds" and group["_flagged"].all():
                continue  # an anomalous seed run: left out of the seeds' preprocessing
            runs[model_id] = (group["_row"].to_list(), group["step"].to_list())
            excluded |= set(group.filter(pl.col("_flagged"))["_row"].to_list())
        out[name] = RunGroup(runs, frozenset(excluded))
    return out


def klscale_pretraining_pairs(main: RunGroup) -> dict[str, Pairs]:
    """Per size: consecutive kept checkpoints exactly 1,000 steps apart ending after step 2,000;
    the first 50 and the last 50 of them."""
    early: tuple[list[int], list[int]] = ([], [])
    late: tuple[list[int], list[int]] = ([], [])
    for rows, steps in main.runs.values():
        kept = [(s, r) for s, r in zip(steps, rows, strict=True) if r not in main.excluded]
        pairs = [
            (ra, rb)
            for (sa, ra), (sb, rb) in zip(kept, kept[1:], strict=False)
            if sb - sa == KLSCALE_INTERVAL and sb > KLSCALE_AFTER_STEP
        ]
        for target, chosen in ((early, pairs[:KLSCALE_N_INTERVALS]), (late, pairs[-KLSCALE_N_INTERVALS:])):
            target[0].extend(a for a, _ in chosen)
            target[1].extend(b for _, b in chosen)
    return {PRETRAINING_EARLY: _pairs(*early), PRETRAINING_LATE: _pairs(*late)}


def _final_common(group: RunGroup) -> Pairs:
    """Every pair of the group's runs at the largest step all of them have (kept checkpoints)."""
    by_run = {
        run: {s: r for s, r in zip(steps, rows, strict=True) if r not in group.excluded}
        for run, (rows, steps) in group.runs.items()
    }
    if len(by_run) < 2:
        return _pairs([], [])
    common = set.intersection(*(set(v) for v in by_run.values()))
    if not common:
        return _pairs([], [])
    step = max(common)
    finals = [by_run[run][step] for run in by_run]
    a = [finals[i] for i in range(len(finals)) for _ in range(i + 1, len(finals))]
    b = [finals[j] for i in range(len(finals)) for j in range(i + 1, len(finals))]
    return _pairs(a, b)


def klscale_model_pairs(entries: pl.DataFrame, include_excluded: bool = False) -> dict[str, Pairs]:
    """The models (no step, layer or variant): child vs parent (base_model, the child with a
    model type); and every pair of distinct models among those fine-tune pairs, within one type
    (the child's type) and across types (the release samples random pairs from the same sets)."""
    frame = entries.with_row_index("_row").filter(
        pl.col("step").is_null() & pl.col("layer").is_null() & pl.col("variant").is_null()
    )
    if not include_excluded:
        frame = frame.filter(pl.col("excluded_reason").is_null())
    by_id = dict(zip(frame["model_id"].to_list(), frame["_row"].to_list(), strict=True))
    tune: tuple[list[int], list[int]] = ([], [])
    candidates: dict[str, set[int]] = {}
    for row, base, kind in zip(frame["_row"], frame["base_model"], frame["model_type"], strict=True):
        if base in by_id and kind is not None and by_id[base] != row:
            tune[0].append(by_id[base])
            tune[1].append(row)
            candidates.setdefault(kind, set()).update((row, by_id[base]))
    same: set[tuple[int, int]] = set()
    for members in candidates.values():
        ordered = sorted(members)
        same.update((x, y) for i, x in enumerate(ordered) for y in ordered[i + 1 :])
    union = sorted(set().union(*candidates.values())) if candidates else []
    every = [(x, y) for i, x in enumerate(union) for y in union[i + 1 :]]
    same_sorted = sorted(same)
    return {
        FINE_TUNE: _pairs(*tune),
        SAME_TYPE: _pairs([x for x, _ in same_sorted], [y for _, y in same_sorted]),
        ANY: _pairs([x for x, _ in every], [y for _, y in every]),
    }


def klscale_layer_pairs(entries: pl.DataFrame) -> Pairs:
    """Consecutive logit-lens layers (in layer order) of each model and revision."""
    layers = entries.with_row_index("_row").filter(pl.col("layer").is_not_null() & pl.col("variant").is_null())
    a, b = [], []
    for _, group in layers.group_by("model_id", "revision", maintain_order=True):
        rows = group.sort("layer")["_row"].to_list()
        a.extend(rows[:-1])
        b.extend(rows[1:])
    return _pairs(a, b)


def klscale_setting_pairs(entries: pl.DataFrame, include_excluded: bool = False) -> dict[str, Pairs]:
    """The settings of the kl-scale release's Figure 3, by its own definitions (its
    ``kl-scale/src/calc_kl.py``, method.md section 3), in figure order; pairs index rows of
    ``entries``. Entries with an ``excluded_reason`` are left out unless ``include_excluded``.
    The pretraining, seed and size settings are computed on preprocessed vectors (see
    :func:`klscale_preprocessing`); the others on the raw vectors."""
    groups = klscale_run_groups(entries, include_excluded)
    out: dict[str, Pairs] = {}
    out.update(klscale_pretraining_pairs(groups["main"]))
    out[SEEDS] = _final_common(groups["seeds"])
    out[KLSCALE_SIZES] = _final_common(groups["main"])
    frame = entries.with_row_index("_row")
    if not include_excluded:
        frame = frame.filter(pl.col("excluded_reason").is_null())
    kept = frame["_row"].to_numpy()
    for name, pairs in variant_pairs(frame.drop("_row")).items():
        out[name] = Pairs(kept[pairs.a], kept[pairs.b])
    out.update(klscale_model_pairs(entries, include_excluded))
    layers = klscale_layer_pairs(frame.drop("_row"))
    out[ADJACENT_LAYERS] = Pairs(kept[layers.a], kept[layers.b])
    return {name: pairs for name, pairs in out.items() if pairs.size}


# Which settings the release computes on preprocessed vectors, and from which group of runs.
KLSCALE_PREPROCESSED = {PRETRAINING_EARLY: "main", PRETRAINING_LATE: "main", KLSCALE_SIZES: "main", SEEDS: "seeds"}


def klscale_preprocessing(
    raw: np.ndarray, n_bytes: np.ndarray, group: RunGroup
) -> tuple[float, np.ndarray, float] | None:
    """The release's preprocessing of a group of runs (method.md section 3): the clip threshold
    (the 2% quantile of the kept checkpoints' values), the mask of texts kept (all but the 3%
    whose largest |change| between consecutive checkpoints from step 2,000 on, pairs touching a
    left-out checkpoint skipped, is largest) and B over the kept texts. ``raw`` holds the rows of
    the entries; None when the group has no runs."""
    rows = [r for run_rows, _ in group.runs.values() for r in run_rows if r not in group.excluded]
    if not rows:
        return None
    threshold = float(np.quantile(raw[rows].astype(np.float64), KLSCALE_CLIP_FRACTION))
    n = raw.shape[1]
    score = np.full(n, -np.inf)
    for run_rows, steps in group.runs.values():
        later = [(s, r) for s, r in zip(steps, run_rows, strict=True) if s >= KLSCALE_WARMUP_STEP]
        for (_, ra), (_, rb) in zip(later, later[1:], strict=False):
            if ra in group.excluded or rb in group.excluded:
                continue
            a = np.maximum(raw[ra].astype(np.float64), threshold)
            b = np.maximum(raw[rb].astype(np.float64), threshold)
            score = np.maximum(score, np.abs(b - a))
    keep = np.ones(n, dtype=bool)
    drop = int(round(n * KLSCALE_DROP_FRACTION))
    if drop and np.isfinite(score).any():
        keep[np.argsort(-score, kind="stable")[:drop]] = False
    return threshold, keep, float(n_bytes[keep].mean())


def select_setting_pairs(
    entries: pl.DataFrame, definitions: str = "auto", include_excluded: bool = False
) -> tuple[str, dict[str, Pairs]]:
    """The definition set used ('llkl' or 'kl-scale'; 'auto': kl-scale for an import of that
    release) and its settings' pairs."""
    from llkl_db.errors import BadValueError

    if definitions not in DEFINITIONS:
        raise BadValueError("definitions", definitions, f"expected one of {', '.join(DEFINITIONS)}")
    if definitions == "auto":
        definitions = "kl-scale" if is_klscale_import(entries) else "llkl"
    if definitions == "kl-scale":
        return definitions, klscale_setting_pairs(entries, include_excluded)
    if include_excluded or entries["excluded_reason"].is_null().all():
        return definitions, setting_pairs(entries)
    kept = entries.with_row_index("_row").filter(pl.col("excluded_reason").is_null())
    rows = kept["_row"].to_numpy()
    found = setting_pairs(kept.drop("_row"))
    return definitions, {name: Pairs(rows[p.a], rows[p.b]) for name, p in found.items()}
