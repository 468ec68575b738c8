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


def model_pairs(entries: pl.DataFrame) -> dict[str, Pairs]:
    """Seeds, fine-tunes, sizes within a family, same type and any two models (final entries)."""
    final = final_entries(entries)
    rows = final["_row"].to_list()
    ids = final["model_id"].to_list()
    types = final["model_type"].to_list()
    params = final["n_params"].to_list()
    bases = final["base_model"].to_list()
    groups = [seed_group(m) for m in ids]
    families = [family_of(m) for m in ids]
    by_id = dict(zip(ids, rows, strict=True))
    found: dict[str, tuple[list[int], list[int]]] = {k: ([], []) for k in (SEEDS, FINE_TUNE, SIZES, SAME_TYPE, ANY)}

    def add(name: str, i: int, j: int) -> None:
        found[name][0].append(rows[i])
        found[name][1].append(rows[j])

    tuned: set[frozenset[str]] = set()
    for i, base in enumerate(bases):
        if base and base in by_id and base != ids[i]:
            found[FINE_TUNE][0].append(by_id[base])
            found[FINE_TUNE][1].append(rows[i])
            tuned.add(frozenset((base, ids[i])))
    n = len(rows)
    for i in range(n):
        for j in range(i + 1, n):
            if groups[i] == groups[j]:
                add(SEEDS, i, j)
            elif frozenset((ids[i], ids[j])) in tuned:
                continue  # a parent and its fine-tune are their own setting
            elif families[i] == families[j]:
                if types[i] == types[j] and params[i] != params[j]:
                    add(SIZES, i, j)
            else:
                if types[i] is not None and types[i] == types[j]:
                    add(SAME_TYPE, i, j)
                add(ANY, i, j)
    return {name: _pairs(*ab) for name, ab in found.items()}


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
KLSCALE_INTERVAL = 1000  # pretraining: one-thousand-step intervals
KLSCALE_AFTER_STEP = 2000  # ... starting at or after step 2,000
KLSCALE_N_INTERVALS = 50  # the first and the last 50 of them
KLSCALE_SEED_MODEL = "EleutherAI/pythia-410m"
PRETRAINING_EARLY = "pretraining, first 50 intervals"
PRETRAINING_LATE = "pretraining, last 50 intervals"
KLSCALE_SIZES = "Pythia sizes, final step"


def is_klscale_import(entries: pl.DataFrame) -> bool:
    """Whether ``entries`` come from an import of the kl-scale release (their contributor says so)."""
    return bool(entries["contributor"].fill_null("").str.starts_with(KLSCALE_CONTRIBUTOR).any())


def _included(entries: pl.DataFrame, include_excluded: bool) -> pl.DataFrame:
    """Rows (with ``_row``) of the entries to use: those without an ``excluded_reason``."""
    frame = entries.with_row_index("_row")
    return frame if include_excluded else frame.filter(pl.col("excluded_reason").is_null())


def _pythia_runs(frame: pl.DataFrame) -> pl.DataFrame:
    """Checkpoint rows (output layer, reference precision) of the EleutherAI/pythia-* runs."""
    return frame.filter(
        pl.col("step").is_not_null()
        & pl.col("layer").is_null()
        & pl.col("variant").is_null()
        & pl.col("model_id").str.starts_with("EleutherAI/pythia-")
    )


def klscale_pretraining_pairs(frame: pl.DataFrame) -> dict[str, Pairs]:
    """Each size's main run (no seed): the checkpoint pairs (s, s + 1000) with s >= 2000, both
    present; the first 50 and the last 50 of them in step order."""
    early: tuple[list[int], list[int]] = ([], [])
    late: tuple[list[int], list[int]] = ([], [])
    runs = _pythia_runs(frame).filter(~pl.col("model_id").str.contains(r"-seed\d+$"))
    for _, group in runs.group_by("model_id", maintain_order=True):
        by_step = dict(zip(group["step"].to_list(), group["_row"].to_list(), strict=True))
        starts = sorted(s for s in by_step if s >= KLSCALE_AFTER_STEP and s + KLSCALE_INTERVAL in by_step)
        for target, chosen in ((early, starts[:KLSCALE_N_INTERVALS]), (late, starts[-KLSCALE_N_INTERVALS:])):
            target[0].extend(by_step[s] for s in chosen)
            target[1].extend(by_step[s + KLSCALE_INTERVAL] for s in chosen)
    return {PRETRAINING_EARLY: _pairs(*early), PRETRAINING_LATE: _pairs(*late)}


def klscale_seed_pairs(frame: pl.DataFrame) -> Pairs:
    """Every pair of 410m runs (the main run and its -seedN runs) at the last step both have."""
    runs = _pythia_runs(frame).filter(pl.col("model_id").str.contains(r"^EleutherAI/pythia-410m(-seed\d+)?$"))
    by_run = {
        model_id: dict(zip(group["step"].to_list(), group["_row"].to_list(), strict=True))
        for (model_id,), group in runs.group_by("model_id", maintain_order=True)
    }
    a, b = [], []
    ids = sorted(by_run)
    for i, x in enumerate(ids):
        for y in ids[i + 1 :]:
            common = set(by_run[x]) & set(by_run[y])
            if common:
                step = max(common)
                a.append(by_run[x][step])
                b.append(by_run[y][step])
    return _pairs(a, b)


def klscale_size_pairs(frame: pl.DataFrame) -> Pairs:
    """Every pair of Pythia sizes (main runs) at their final step."""
    runs = _pythia_runs(frame).filter(~pl.col("model_id").str.contains(r"-seed\d+$"))
    finals = [int(group.sort("step")["_row"][-1]) for _, group in runs.group_by("model_id", maintain_order=True)]
    a = [finals[i] for i in range(len(finals)) for _ in range(i + 1, len(finals))]
    b = [finals[j] for i in range(len(finals)) for j in range(i + 1, len(finals))]
    return _pairs(a, b)


def klscale_model_pairs(frame: pl.DataFrame) -> dict[str, Pairs]:
    """The models (no step, layer or variant): child vs parent (base_model), and every pair of
    distinct models of the same type / of any type."""
    models = frame.filter(pl.col("step").is_null() & pl.col("layer").is_null() & pl.col("variant").is_null())
    ids, rows = models["model_id"].to_list(), models["_row"].to_list()
    types, bases = models["model_type"].to_list(), models["base_model"].to_list()
    by_id = dict(zip(ids, rows, strict=True))
    tune = (
        [by_id[base] for base in bases if base in by_id],
        [r for r, base in zip(rows, bases, strict=True) if base in by_id],
    )
    same: tuple[list[int], list[int]] = ([], [])
    every: tuple[list[int], list[int]] = ([], [])
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            every[0].append(rows[i])
            every[1].append(rows[j])
            if types[i] is not None and types[i] == types[j]:
                same[0].append(rows[i])
                same[1].append(rows[j])
    return {FINE_TUNE: _pairs(*tune), SAME_TYPE: _pairs(*same), ANY: _pairs(*every)}


def klscale_layer_pairs(frame: pl.DataFrame) -> Pairs:
    """Adjacent logit-lens layers (l, l + 1) of each model and revision, both present."""
    layers = frame.filter(pl.col("layer").is_not_null() & pl.col("variant").is_null())
    a, b = [], []
    for _, group in layers.group_by("model_id", "revision", maintain_order=True):
        by_layer = dict(zip(group["layer"].to_list(), group["_row"].to_list(), strict=True))
        for layer in sorted(by_layer):
            if layer + 1 in by_layer:
                a.append(by_layer[layer])
                b.append(by_layer[layer + 1])
    return _pairs(a, b)


def klscale_setting_pairs(entries: pl.DataFrame, include_excluded: bool = False) -> dict[str, Pairs]:
    """The settings of the kl-scale release's Figure 3, by its own definitions (method.md
    section 3), in figure order; pairs index rows of ``entries``. Entries with an
    ``excluded_reason`` are left out unless ``include_excluded``."""
    frame = _included(entries, include_excluded)
    out: dict[str, Pairs] = {}
    out.update(klscale_pretraining_pairs(frame))
    out[SEEDS] = klscale_seed_pairs(frame)
    out[KLSCALE_SIZES] = klscale_size_pairs(frame)
    kept = frame["_row"].to_numpy()
    for name, pairs in variant_pairs(frame.drop("_row")).items():
        out[name] = Pairs(kept[pairs.a], kept[pairs.b])
    models = klscale_model_pairs(frame)
    out[FINE_TUNE] = models.pop(FINE_TUNE)
    out.update(models)
    out[ADJACENT_LAYERS] = klscale_layer_pairs(frame)
    return {name: pairs for name, pairs in out.items() if pairs.size}


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
    kept = _included(entries, False)
    rows = kept["_row"].to_numpy()
    found = setting_pairs(kept.drop("_row"))
    return definitions, {name: Pairs(rows[p.a], rows[p.b]) for name, p in found.items()}
