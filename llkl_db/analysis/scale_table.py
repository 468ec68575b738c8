"""The KL scale computed from a dataset: the median KL (with interquartile range and count) of
every setting it holds, beside the reference medians of arXiv 2505.15353 (method.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from llkl_db.errors import BadValueError, LlklError
from llkl_db.scale import REFERENCE_MEDIANS

from .pairs import kl_pairs
from .settings import KLSCALE_PREPROCESSED, Pairs, klscale_preprocessing, klscale_run_groups, select_setting_pairs

DEFAULT_MAX_PAIRS = 20_000


@dataclass
class ScaleTable:
    """One row per setting: n_pairs, median, q25, q75 (bits/byte), the reference median and an
    example pair."""

    table: pl.DataFrame
    sampled: dict[str, int]
    definitions: str = "llkl"
    n_excluded: int = 0  # entries left out for their excluded_reason

    def to_dict(self) -> dict:
        return {
            "settings": self.table.to_dicts(),
            "sampled": self.sampled,
            "definitions": self.definitions,
            "n_excluded": self.n_excluded,
        }


def _sample(pairs: Pairs, max_pairs: int, rng: np.random.Generator) -> Pairs:
    if pairs.size <= max_pairs:
        return pairs
    keep = np.sort(rng.choice(pairs.size, size=max_pairs, replace=False))
    return Pairs(pairs.a[keep], pairs.b[keep])


def _klscale_kl(ds, entries: pl.DataFrame, include_excluded: bool):
    """KL of a setting's pairs the way the kl-scale release computes it: the raw (unclipped)
    vectors over all texts, except the pretraining, seed and size settings, which use the
    vectors of their group of runs preprocessed (clipped, jumpy texts dropped, B recomputed)."""
    raw = ds.raw_loglik
    n_bytes = ds.folder.text_set.n_bytes.astype(np.float64)
    groups = klscale_run_groups(entries, include_excluded)
    prepared: dict[str, tuple[float, np.ndarray, float] | None] = {}

    def kl_of(name: str, pairs: Pairs) -> np.ndarray:
        group = KLSCALE_PREPROCESSED.get(name)
        if group is None:
            return kl_pairs(raw, pairs.a, pairs.b, ds.metadata.mean_text_bytes)[0]
        if group not in prepared:
            prepared[group] = klscale_preprocessing(raw, n_bytes, groups[group])
        threshold, keep, mean_bytes = prepared[group]
        used, index = np.unique(np.concatenate([pairs.a, pairs.b]), return_inverse=True)
        sub = np.maximum(raw[used][:, keep], np.float32(threshold))
        return kl_pairs(sub, index[: pairs.size], index[pairs.size :], mean_bytes)[0]

    return kl_of


def scale_table(
    ds,
    max_pairs: int = DEFAULT_MAX_PAIRS,
    seed: int = 0,
    definitions: str = "auto",
    include_excluded: bool = False,
) -> ScaleTable:
    """The scale table of the dataset view ``ds``: settings with more than ``max_pairs`` pairs
    are estimated from that many random pairs (seeded). ``definitions``: 'llkl' (this project's
    recognition of settings), 'kl-scale' (the kl-scale release's own, see
    :func:`~llkl_db.analysis.settings.klscale_setting_pairs`) or 'auto' (kl-scale for an import
    of that release). Entries with an ``excluded_reason`` are left out unless ``include_excluded``."""
    if max_pairs < 1:
        raise BadValueError("max_pairs", max_pairs, "must be at least 1")
    entries = ds.entries
    if len(ds) < 2:
        raise LlklError("the scale needs at least two entries")
    definitions, settings = select_setting_pairs(entries, definitions, include_excluded)
    n_excluded = 0 if include_excluded else int(entries["excluded_reason"].is_not_null().sum())
    if not settings:
        raise LlklError(
            "no pairs of any setting in this dataset (checkpoints, seeds, variants, fine-tunes, models, layers)"
        )
    rng = np.random.default_rng(seed)
    kl_of = _klscale_kl(ds, entries, include_excluded) if definitions == "kl-scale" else None
    chosen = {name: _sample(pairs, max_pairs, rng) for name, pairs in settings.items()}
    if kl_of is None:  # only the rows of the pairs chosen (read by row groups with an index)
        needed = np.unique(np.concatenate([np.concatenate([p.a, p.b]) for p in chosen.values()]))
        x = ds.loglik_rows(needed)
    ids = entries["entry_id"].to_list()
    rows, sampled = [], {}
    for name, pairs in settings.items():
        used = chosen[name]
        if used.size < pairs.size:
            sampled[name] = pairs.size
        if kl_of is None:
            a, b = np.searchsorted(needed, used.a), np.searchsorted(needed, used.b)
            kl, _ = kl_pairs(x, a, b, ds.metadata.mean_text_bytes)
        else:
            kl = kl_of(name, used)
        q25, median, q75 = np.percentile(kl, [25, 50, 75])
        reference = REFERENCE_MEDIANS.get(name)
        rows.append(
            {
                "setting": name,
                "n_pairs": pairs.size,
                "median_bpb": float(median),
                "q25_bpb": float(q25),
                "q75_bpb": float(q75),
                "reference_bpb": reference,
                "example": f"{ids[used.a[0]]} | {ids[used.b[0]]}",
            }
        )
    schema = {
        "setting": pl.String,
        "n_pairs": pl.Int64,
        "median_bpb": pl.Float64,
        "q25_bpb": pl.Float64,
        "q75_bpb": pl.Float64,
        "reference_bpb": pl.Float64,
        "example": pl.String,
    }
    return ScaleTable(pl.DataFrame(rows, schema=schema), sampled, definitions, n_excluded)
