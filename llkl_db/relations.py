"""What one model is to another: same weights, quantization, fine-tune / continued training,
same family, or unrelated. Torch-free: entry metadata and KL values in, labels out.

Two sources, in this order:

1. **Metadata.** When both entries' metadata say how they relate, that is the answer
   (confidence 1): the same model and revision in two precisions (a variant: a cast or a
   quantization of at least 8 bits is "same weights", fewer bits "quantization"); two revisions
   of one model (checkpoints of a run: "fine-tune / continued training"); a ``base_model`` link
   ("fine-tune / continued training"); seeds of one run or sizes of one family ("same family");
   different model types ("unrelated"). A label never contradicts the metadata.
2. **The calibrated classifier.** Otherwise a Gaussian per relation class on log KL
   (bits/byte), fitted on the dataset's own labelled pairs (the same recognition as the scale's
   settings, ``llkl_db.analysis.settings``), with equal priors; the measurement noise of a KL
   estimate, (SE / KL)^2 on the log scale, widens each class. A class with fewer than
   ``MIN_PAIRS`` labelled pairs in the dataset falls back to the reference scale of
   arXiv 2505.15353 (method.md, section 3), and each answer says which source it used.
   The priors are the dataset's own frequencies of each relation between an entry and its
   nearest entry (the pairs the classifier is applied to: place names the nearest entry),
   smoothed (+1 per class) and mixed half and half with equal priors (``nearest_priors``), so
   a class absent among the dataset's nearest pairs is down-weighted, never ruled out; with no
   labelled nearest pairs the priors are equal.

The provenance test asks whether a candidate is closer than unrelated models ever are: the
one-sided p-value of its log KL under the dataset's unrelated-pairs Gaussian (else the
reference one), Sidak-corrected for having looked at every entry compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from llkl_db.errors import LlklError
from llkl_db.variants import describe_variant

SAME_WEIGHTS = "same weights"
QUANTIZATION = "quantization"
FINE_TUNE = "fine-tune/continued training"
SAME_FAMILY = "same family"
UNRELATED = "unrelated"
LAYER = "logit-lens layer"
CLASSES = (SAME_WEIGHTS, QUANTIZATION, FINE_TUNE, SAME_FAMILY, UNRELATED)
# Relations in which one model is made from the other (a "parent" for place's verdict).
DERIVED = (SAME_WEIGHTS, QUANTIZATION, FINE_TUNE)

MIN_PAIRS = 3  # labelled pairs a class needs before the dataset's own distribution is used
MIN_LOG_SD = 0.35  # a floor on a class's spread in natural log units (a factor of ~1.4)
MAX_PAIRS_PER_CLASS = 2000  # labelled pairs sampled per class for calibration on huge datasets
NEAR_LOSSLESS_BITS = 8

# Reference scale (method.md section 3, bits/byte): a median and a log-spread per class.
# same weights: below the closest setting there (late checkpoints 0.011); quantization: 8/4-bit
# 0.44/0.49; fine-tune/continued training: fine-tune 0.40, checkpoints 0.011-0.067; same
# family: seeds 0.12, sizes 0.48; unrelated: same type 0.95, any two models 2.2.
REFERENCE = {
    SAME_WEIGHTS: (0.002, 1.5),
    QUANTIZATION: (0.46, 0.6),
    FINE_TUNE: (0.07, 1.5),
    SAME_FAMILY: (0.24, 0.8),
    UNRELATED: (1.45, 0.8),
}


# --- metadata ------------------------------------------------------------------------------
def _variant_relation(variant: str | None) -> str:
    if variant is None:
        return SAME_WEIGHTS
    v = describe_variant(variant)
    if v.kind == "cast" or v.bits >= NEAR_LOSSLESS_BITS:
        return SAME_WEIGHTS
    return QUANTIZATION


def _seed_group(model_id: str) -> str:
    from llkl_db.analysis.runs import seed_group

    return seed_group(model_id)


def _family(model_id: str) -> str:
    from llkl_db.analysis.settings import family_of

    return family_of(model_id)


def metadata_relation(a: dict, b: dict) -> str | None:
    """The relation of two entries (metadata dicts) when their metadata say it, else None."""
    if a.get("layer") is not None or b.get("layer") is not None:
        if a["model_id"] == b["model_id"] and a.get("revision") == b.get("revision"):
            return LAYER
        return None
    if a["model_id"] == b["model_id"]:
        if a.get("revision") == b.get("revision"):
            # two precisions of one checkpoint: the coarser one says how far they are apart
            va, vb = a.get("variant"), b.get("variant")
            bits = [describe_variant(v) for v in (va, vb) if v is not None]
            if any(v.kind != "cast" and 0 < v.bits < NEAR_LOSSLESS_BITS for v in bits):
                return QUANTIZATION
            return SAME_WEIGHTS
        return FINE_TUNE  # checkpoints of one run
    if (a.get("base_model") and a["base_model"] == b["model_id"]) or (
        b.get("base_model") and b["base_model"] == a["model_id"]
    ):
        return FINE_TUNE
    if _seed_group(a["model_id"]) == _seed_group(b["model_id"]) or _family(a["model_id"]) == _family(b["model_id"]):
        return SAME_FAMILY
    ta, tb = a.get("model_type"), b.get("model_type")
    if ta and tb and ta != tb:
        return UNRELATED
    return None


# --- calibration ---------------------------------------------------------------------------
def labelled_pairs(entries: pl.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Row pairs (a, b) of each relation class that the metadata label, as the scale's settings
    recognise them (variants, checkpoints, base_model links, seeds, sizes, different families).
    A class made of distinct settings is keyed 'CLASS|setting' (fitted as a mixture)."""
    from llkl_db.analysis import settings as st

    found: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def add(cls: str, pairs) -> None:
        found.setdefault(cls, ([], []))
        found[cls][0].append(pairs.a)
        found[cls][1].append(pairs.b)

    for pairs in st.checkpoint_pairs(entries).values():
        add(FINE_TUNE + "|checkpoints", pairs)
    for pairs in st.variant_pairs(entries).values():
        variants = entries["variant"].to_list()
        rel = np.array([_variant_relation(variants[int(b)]) for b in pairs.b])
        for cls in (SAME_WEIGHTS, QUANTIZATION):
            keep = rel == cls
            if keep.any():
                add(cls, st.Pairs(pairs.a[keep], pairs.b[keep]))
    models = st.model_pairs(entries)
    add(FINE_TUNE + "|base_model", models[st.FINE_TUNE])
    add(SAME_FAMILY + "|seeds", models[st.SEEDS])
    add(SAME_FAMILY + "|sizes", models[st.SIZES])
    add(UNRELATED, models[st.ANY])  # different families (same type or not); ANY includes SAME_TYPE
    out = {}
    for cls, (a, b) in found.items():
        if a:
            out[cls] = (np.concatenate(a).astype(np.int64), np.concatenate(b).astype(np.int64))
    return out


@dataclass(frozen=True)
class ClassFit:
    """A Gaussian on ln KL (bits/byte) for one relation class, and where it came from."""

    mean: float
    sd: float
    n_pairs: int
    source: str  # "dataset" or "reference scale"
    components: tuple[tuple[float, float], ...] = ()  # (mean, sd) of each setting of the class


@dataclass(frozen=True)
class Calibration:
    """Per-class fits; ``source`` summarises: 'dataset', 'reference scale' or 'mixed'."""

    fits: dict[str, ClassFit]
    unrelated_log_kl: np.ndarray = field(default_factory=lambda: np.empty(0))
    priors: dict[str, float] = field(default_factory=dict)  # empty: equal priors
    scope: str = "this dataset"  # whose labelled pairs: the dataset, or the entries a filter keeps

    @property
    def source(self) -> str:
        sources = {f.source for f in self.fits.values()}
        return sources.pop() if len(sources) == 1 else "mixed"

    def describe(self) -> str:
        parts = [
            f"{cls}: {f.source}" + (f" ({f.n_pairs} pairs)" if f.source == "dataset" else "")
            for cls, f in self.fits.items()
        ]
        if self.source == "reference scale":
            head = f"relations use the reference scale of arXiv 2505.15353 (too few labelled pairs in {self.scope})"
        else:
            head = f"relations calibrated on the labelled pairs of {self.scope} where it has >= {MIN_PAIRS}"
        return head + "; " + ", ".join(parts)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "priors": dict(self.priors) or "equal",
            "classes": {
                cls: {"median_bpb": math.exp(f.mean), "log_sd": f.sd, "n_pairs": f.n_pairs, "source": f.source}
                for cls, f in self.fits.items()
            },
        }


def _fit(values: np.ndarray) -> tuple[float, float]:
    logs = np.log(values)
    # a robust centre and spread (median, IQR / 1.349), widened by a floor
    q1, q3 = np.percentile(logs, [25, 75])
    sd = max(float(np.std(logs, ddof=1)) if values.size > 1 else 0.0, (q3 - q1) / 1.349)
    return float(np.median(logs)), math.sqrt(sd * sd + MIN_LOG_SD * MIN_LOG_SD)


PRIOR_SHARE = 0.5  # weight of the dataset's nearest-pair frequencies in the priors (rest: equal)
PRIOR_SAMPLE = 256  # entries whose nearest entry is looked up for the priors


def nearest_priors(relations: list[str | None], share: float = PRIOR_SHARE) -> dict[str, float]:
    """Class priors from the metadata relations of (entry, its nearest entry) pairs: the
    frequencies, +1 per class, mixed with equal priors (``share`` of the frequencies). Unlabelled
    pairs (None) and other labels are not counted; none counted gives equal priors."""
    counts = {cls: 0 for cls in CLASSES}
    for r in relations:
        if r in counts:
            counts[r] += 1
    total = sum(counts.values())
    if total == 0:
        return {}
    freq = {cls: (c + 1) / (total + len(CLASSES)) for cls, c in counts.items()}
    return {cls: share * freq[cls] + (1 - share) / len(CLASSES) for cls in CLASSES}


def calibrate(
    kl_by_class: dict[str, np.ndarray], priors: dict[str, float] | None = None, scope: str = "this dataset"
) -> Calibration:
    """Fit each class on its labelled KL values (bits/byte) of ``scope``; too few -> the reference scale.
    Keys 'CLASS|setting' are settings of one class, each fitted on its own (a mixture with equal
    weights: checkpoints and fine-tunes, seeds and sizes are different distances)."""
    fits = {}
    unrelated = np.empty(0)
    for cls in CLASSES:
        parts = {key: np.asarray(v, dtype=np.float64) for key, v in kl_by_class.items() if key.split("|")[0] == cls}
        parts = {key: v[np.isfinite(v) & (v > 0)] for key, v in parts.items()}
        usable = [v for v in parts.values() if v.size >= MIN_PAIRS]
        pooled = np.concatenate(list(parts.values())) if parts else np.empty(0)
        if usable:
            components = tuple(_fit(v) for v in usable)
            mean, sd = _fit(np.concatenate(usable))
            fits[cls] = ClassFit(mean, sd, int(pooled.size), "dataset", components)
            if cls == UNRELATED:
                unrelated = np.log(np.concatenate(usable))
        else:
            median, sd = REFERENCE[cls]
            fits[cls] = ClassFit(math.log(median), sd, int(pooled.size), "reference scale", ((math.log(median), sd),))
    return Calibration(fits, unrelated, dict(priors or {}), scope)


def dataset_priors(
    entries: pl.DataFrame, prepared, exclude: set[int] | None = None, sample: int = PRIOR_SAMPLE, seed: int = 0
) -> dict[str, float]:
    """``nearest_priors`` of a dataset: for up to ``sample`` output entries, the relation to their
    nearest output entry (``prepared``: the dataset's ``llkl_db.math.Prepared``)."""
    from llkl_db.math import nearest

    columns = [c for c in ("model_id", "revision", "layer", "variant", "base_model", "model_type") if c in entries]
    frame = entries.select(columns)
    if "layer" not in frame.columns:
        frame = frame.with_columns(pl.lit(None).alias("layer"))
    metas = frame.to_dicts()
    outputs = np.array([i for i, m in enumerate(metas) if m.get("layer") is None and i not in (exclude or set())])
    if outputs.size < 2:
        return {}
    rng = np.random.default_rng(seed)
    picked = rng.choice(outputs, size=min(sample, outputs.size), replace=False) if outputs.size > sample else outputs
    found = []
    for i in picked:
        mask = np.zeros(len(metas), dtype=bool)
        mask[outputs] = True
        mask[i] = False
        idx, _, _ = nearest(prepared, prepared.clipped[i], 1, mask)
        if idx.size:
            found.append(metadata_relation(metas[int(i)], metas[int(idx[0])]))
    return nearest_priors(found)


def calibrate_from_matrix(
    entries: pl.DataFrame,
    clipped: np.ndarray,
    mean_bytes: float,
    exclude: set[int] | None = None,
    seed: int = 0,
    prepared=None,
) -> Calibration:
    """Calibrate on the labelled pairs of a dataset (``clipped``: its K x N matrix, rows as
    ``entries``). Rows in ``exclude`` are left out (leave-one-out evaluation). With ``prepared``
    (the dataset's ``Prepared``) the priors are the nearest-pair frequencies (``dataset_priors``)."""
    from llkl_db.math import pair_kl

    rng = np.random.default_rng(seed)
    out = {}
    for cls, (a, b) in labelled_pairs(entries).items():
        if exclude:
            keep = ~(np.isin(a, list(exclude)) | np.isin(b, list(exclude)))
            a, b = a[keep], b[keep]
        if a.size > MAX_PAIRS_PER_CLASS:
            pick = rng.choice(a.size, MAX_PAIRS_PER_CLASS, replace=False)
            a, b = a[pick], b[pick]
        values = (
            np.concatenate(
                [
                    np.atleast_1d(pair_kl(clipped[a[i : i + 256]], clipped[b[i : i + 256]], mean_bytes).kl_bpb)
                    for i in range(0, a.size, 256)
                ]
            )
            if a.size
            else np.empty(0)
        )
        out[cls] = values
    priors = dataset_priors(entries, prepared, exclude, seed=seed) if prepared is not None else None
    return calibrate(out, priors)


def calibration_to_json(calibration: Calibration) -> dict:
    """Everything a :class:`Calibration` holds, as plain JSON (published with the index)."""
    return {
        "fits": {
            cls: {
                "mean": f.mean,
                "sd": f.sd,
                "n_pairs": f.n_pairs,
                "source": f.source,
                "components": [list(c) for c in f.components],
            }
            for cls, f in calibration.fits.items()
        },
        "unrelated_log_kl": [float(v) for v in np.asarray(calibration.unrelated_log_kl, dtype=np.float64)],
        "priors": dict(calibration.priors),
    }


def calibration_from_json(raw: object, where: str) -> Calibration:
    """The :class:`Calibration` that :func:`calibration_to_json` wrote; anything else is refused."""
    try:
        fits = {
            str(cls): ClassFit(
                mean=float(f["mean"]),
                sd=float(f["sd"]),
                n_pairs=int(f["n_pairs"]),
                source=str(f["source"]),
                components=tuple((float(m), float(s)) for m, s in f["components"]),
            )
            for cls, f in raw["fits"].items()
        }
        unrelated = np.asarray([float(v) for v in raw["unrelated_log_kl"]], dtype=np.float64)
        priors = {str(k): float(v) for k, v in raw["priors"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LlklError(f"{where}: not a relation calibration ({type(exc).__name__})") from None
    numbers = [v for f in fits.values() for v in (f.mean, f.sd)] + list(unrelated) + list(priors.values())
    if not all(math.isfinite(v) for v in numbers) or any(f.sd <= 0 for f in fits.values()):
        raise LlklError(f"{where}: a relation calibration with non-finite or non-positive values")
    return Calibration(fits, unrelated, priors)


INDEXED_PAIRS_PER_CLASS = 200  # bounds the rows read: ~2,400 rows at most over the classes


def calibrate_from_rows(
    entries: pl.DataFrame,
    rows,
    mean_bytes: float,
    seed: int = 0,
    limit: int = INDEXED_PAIRS_PER_CLASS,
    scope: str = "this dataset",
) -> Calibration:
    """Calibrate like :func:`calibrate_from_matrix` from a sample of each class's labelled pairs,
    reading only the rows they need (``rows(positions) -> clipped rows``): for a dataset queried
    through its index, whose whole matrix is never loaded, or the entries a filter keeps."""
    from llkl_db.math import pair_kl

    rng = np.random.default_rng(seed)
    chosen = {}
    for cls, (a, b) in labelled_pairs(entries).items():
        if a.size > limit:
            pick = rng.choice(a.size, limit, replace=False)
            a, b = a[pick], b[pick]
        chosen[cls] = (a, b)
    needed = sorted({int(p) for a, b in chosen.values() for p in np.concatenate([a, b])})
    fetched = rows(needed) if needed else None
    where = {p: i for i, p in enumerate(needed)}
    out = {}
    for cls, (a, b) in chosen.items():
        if a.size == 0:
            out[cls] = np.empty(0)
            continue
        va = fetched[[where[int(p)] for p in a]]
        vb = fetched[[where[int(p)] for p in b]]
        out[cls] = np.atleast_1d(pair_kl(va, vb, mean_bytes).kl_bpb)
    return calibrate(out, scope=scope)


# --- classification ------------------------------------------------------------------------
@dataclass(frozen=True)
class Relation:
    """A relation label with its confidence, the source of the answer, and the posterior."""

    relation: str
    confidence: float
    basis: str  # "metadata", "dataset" or "reference scale" (or "mixed")
    posterior: dict[str, float] = field(default_factory=dict)


def posterior(calibration: Calibration, kl_bpb: float, se_bpb: float = 0.0) -> dict[str, float]:
    """P(class | KL) under the calibration's priors (equal when it has none), each class's
    Gaussian on ln KL widened by (SE / KL)^2."""
    kl = max(float(kl_bpb), 1e-12)
    # beyond the outermost class centres the answer is the outermost class: Gaussians of unequal
    # spreads cross again in their tails (a wide class would win at KL ~ 0 or at huge KL)
    centres = [mean for fit in calibration.fits.values() for mean, _ in fit.components or ((fit.mean, fit.sd),)]
    x = min(max(math.log(kl), min(centres)), max(centres))
    noise = (float(se_bpb) / kl) ** 2 if se_bpb and np.isfinite(se_bpb) else 0.0
    noise = min(noise, 4.0)
    logp = {}
    for cls, fit in calibration.fits.items():
        terms = []
        for mean, sd in fit.components or ((fit.mean, fit.sd),):
            var = sd * sd + noise
            terms.append(-0.5 * (x - mean) ** 2 / var - 0.5 * math.log(var))
        top_term = max(terms)
        logp[cls] = top_term + math.log(sum(math.exp(t - top_term) for t in terms) / len(terms))
        if calibration.priors:
            logp[cls] += math.log(max(calibration.priors.get(cls, 0.0), 1e-12))
    top = max(logp.values())
    weights = {cls: math.exp(v - top) for cls, v in logp.items()}
    total = sum(weights.values())
    return {cls: w / total for cls, w in weights.items()}


def classify(calibration: Calibration, kl_bpb: float, se_bpb: float = 0.0) -> Relation:
    """The most probable relation class for a KL value and the posterior behind it."""
    post = posterior(calibration, kl_bpb, se_bpb)
    best = max(post, key=post.get)
    basis = calibration.fits[best].source
    return Relation(best, post[best], basis, post)


def relate(calibration: Calibration, a: dict, b: dict, kl_bpb: float, se_bpb: float = 0.0) -> Relation:
    """The metadata's relation when it says one (confidence 1), else the classifier's."""
    known = metadata_relation(a, b)
    if known is not None:
        return Relation(known, 1.0, "metadata")
    return classify(calibration, kl_bpb, se_bpb)


def provenance_p_value(calibration: Calibration, kl_bpb: float, n_compared: int) -> tuple[float, float]:
    """(p, p corrected): the chance that an unrelated model comes this close (one-sided, lower
    tail of the unrelated class's Gaussian on ln KL), and Sidak's correction for the minimum over
    ``n_compared`` entries: 1 - (1 - p)^n."""
    fit = calibration.fits[UNRELATED]
    z = (math.log(max(float(kl_bpb), 1e-300)) - fit.mean) / fit.sd
    p = 0.5 * math.erfc(-z / math.sqrt(2.0))
    n = max(1, int(n_compared))
    corrected = -math.expm1(n * math.log1p(-p)) if p < 1.0 else 1.0
    return p, min(1.0, corrected)


def label_neighbours(
    calibration: Calibration, entries: pl.DataFrame, query: int, rows: np.ndarray, kl_bpb, se_bpb
) -> list[Relation]:
    """The relation of entry ``query`` to each of ``rows`` (positions in ``entries``)."""
    columns = [c for c in ("model_id", "revision", "layer", "variant", "base_model", "model_type") if c in entries]
    frame = entries.select(columns)
    q = frame.row(int(query), named=True)
    kl = np.atleast_1d(kl_bpb)
    se = np.atleast_1d(se_bpb)
    return [
        relate(calibration, q, frame.row(int(r), named=True), float(kl[i]), float(se[i])) for i, r in enumerate(rows)
    ]
