"""Leave-one-out evaluation of ``llkl-db place``: each entry is taken out of a dataset and placed
from K of its own texts (its stored values restricted to the chosen texts) as if new, and the
answer is compared with the full-text one.

    python benchmarks/bench_place.py --out benchmarks/results/place.json      # synthetic + embedded

Metrics per K: top-1 agreement with the full-text nearest; the median relative error of the
KLs of the full-text top 10; the share of those full-text values inside the reported +-2 SE;
parent-identification precision and recall against the labelled pairs (a named parent is the
verdict's candidate when its relation is same weights / quantization / fine-tune and the
provenance test rejects "unrelated"; it is right when the metadata relate the two that way);
the new-run check: each run's final entry placed with its whole run, the models derived from it
and the models it derives from left out (nothing left is its parent), counting the parents
wrongly named; near ties: the share of full-text top two closer than 2 paired SE, the share the
estimate flags as a tie, and top-1 agreement when it does not. Measured side by side in one run (``--runs``): uniform texts
with the assisted estimator (the default), uniform texts with the plain one, and the two-stage
adaptive choice (weighted estimator).

    python benchmarks/bench_place.py --priors nearest   # relation priors from nearest-pair frequencies

The synthetic datasets: Markov chains over 16 symbols, N = 10,000 texts of 40-120 symbols drawn
from a "data" chain; families (the data chain's log-probabilities plus a large family
perturbation), two sizes per family (medium perturbation), two seeds per size (small), two late
checkpoints per seed (tiny), fine-tuned children that move a few rows of the chain (base_model
set), and quantization-like variants (log-probabilities rounded to a grid). Two trees (``--trees``):
"near-lossless" (8-bit rounding nearly exact, as GGUF Q8_0 is on the embedded dataset; fine-tunes
as far from their parent as seeds) and "reference" (every relation's median KL at method.md's
reference value, the scale of arXiv 2505.15353; each relation's median is printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llkl_db import math as llmath  # noqa: E402
from llkl_db import relations as rel  # noqa: E402
from llkl_db.place.estimate import adaptive_texts, choose_texts  # noqa: E402
from llkl_db.place.place import judge, rank  # noqa: E402

A = 16
KS = (50, 100, 200, 300, 400, 1000)  # K = 300 is the target


# --- the synthetic family tree ------------------------------------------------------------------
def _normalise(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class Tree:
    """The synthetic tree's perturbation sizes: the SD of the Gaussian noise each relation adds to
    the chains' log-probabilities (``variants``: name and rounding grid of each variant)."""

    model_type: float  # between the four model types (0: families of one type are as far apart)
    family: float
    size: float
    seed: float
    checkpoint: float  # step900 from the final step; step800 drifts twice as far
    fine_tune: float  # on the rows a fine-tune moves
    tuned_rows: int
    variants: tuple[tuple[str, float], ...]
    dither: bool = False


# each relation's median KL at method.md's reference value (arXiv 2505.15353, bits/byte): late
# checkpoints 0.011, seeds 0.12, fine-tunes 0.40, 8-bit 0.44, 4-bit 0.49, sizes 0.48, different
# families of one type 0.95, any two families 2.2 (the tree's medians: benchmarks/README.md)
REFERENCE_TREE = Tree(1.10, 0.57, 0.605, 0.286, 0.076, 1.06, 6, (("bnb-8bit", 2.32), ("bnb-4bit", 2.46)), True)
# the first tree: near-lossless 8-bit copies (as GGUF Q8_0 is on the embedded dataset) and
# fine-tunes as far from their parent as seeds are, where near ties cap strict top-1
NEAR_LOSSLESS_TREE = Tree(0.0, 0.7, 0.25, 0.12, 0.02, 0.35, 4, (("q8_0", 0.01), ("q4_0", 0.3)))
TREES = {"near-lossless": NEAR_LOSSLESS_TREE, "reference": REFERENCE_TREE}


def synthetic(n_texts: int = 10_000, n_families: int = 16, seed: int = 0, tree: Tree = NEAR_LOSSLESS_TREE):
    """(loglik K x N, entries frame, mean bytes) of the synthetic tree."""
    rng = np.random.default_rng(seed)
    data = np.log(rng.dirichlet(np.full(A, 1.0), size=A))
    lengths = rng.integers(40, 121, size=n_texts)
    state = rng.integers(0, A, size=n_texts)
    first = state.copy()
    cum = np.cumsum(np.exp(data), axis=1)
    counts = np.zeros((n_texts, A * A))
    rows = np.arange(n_texts)
    for t in range(1, lengths.max()):
        nxt = np.minimum((rng.random(n_texts)[:, None] > cum[state]).sum(axis=1), A - 1)
        alive = t < lengths
        np.add.at(counts, (rows[alive], (state * A + nxt)[alive]), 1.0)
        state = np.where(alive, nxt, state)
    models: list[tuple[dict, np.ndarray]] = []

    def add(meta: dict, logp: np.ndarray) -> None:
        models.append((meta, _normalise(logp)))

    def noise(sd: float) -> np.ndarray:
        return sd * rng.standard_normal((A, A))

    types = ["llama", "gpt2", "gpt_neox", "mistral"]
    typed = [data + noise(tree.model_type) for _ in types] if tree.model_type > 0 else [data] * len(types)
    for f in range(n_families):
        family = typed[f % len(types)] + noise(tree.family)
        mtype = types[f % len(types)]
        for size, spread in (("70m", 0.0), ("160m", tree.size)):
            sized = family + noise(spread)
            for s in range(2):
                seeded = sized + noise(tree.seed)
                model_id = f"syn/fam{f:02d}-{size}-seed{s}"
                base = {"model_id": model_id, "model_type": mtype, "seed": s, "n_params": int(size[:-1]) * 10**6}
                for step, drift in ((800, 2 * tree.checkpoint), (900, tree.checkpoint)):
                    add({**base, "revision": f"step{step}", "step": step}, seeded + noise(drift))
                add({**base, "revision": "main", "step": 1000}, seeded)
                if s == 0:
                    for variant, grid in tree.variants:
                        # each quantizer's own grid offset, so two variants' rounding errors differ
                        offset = rng.uniform(0.0, grid) if tree.dither else 0.0
                        add(
                            {**base, "revision": "main", "step": 1000, "variant": variant},
                            np.round((seeded - offset) / grid) * grid + offset,
                        )
                if s == 0 and size == "70m":
                    for j in range(2):
                        tuned = seeded.copy()
                        moved = rng.choice(A, size=tree.tuned_rows, replace=False)
                        tuned[moved] += tree.fine_tune * rng.standard_normal((tree.tuned_rows, A))
                        add(
                            {
                                "model_id": f"syn/tuned{f:02d}-{j}",
                                "model_type": mtype,
                                "base_model": model_id,
                                "revision": "main",
                                "n_params": 70 * 10**6,
                            },
                            tuned,
                        )
    start = np.log(np.full(A, 1.0 / A))[first]
    loglik = np.stack([start + counts @ logp.ravel() for _, logp in models]).astype(np.float32)
    metas = []
    for meta, _ in models:
        m = {"layer": None, "variant": None, "base_model": None, "step": None, "seed": None, **meta}
        m["entry_id"] = f"{m['model_id']}@{m['revision']}" + (f":{m['variant']}" if m["variant"] else "")
        metas.append(m)
    entries = pl.DataFrame(metas, infer_schema_length=None)
    return loglik, entries, float(lengths.mean())


def kl_matrix(clipped: np.ndarray, mean_bytes: float) -> np.ndarray:
    """KL in bits/byte on all N texts between every two rows of clipped log-likelihoods."""
    variance = llmath.variance_matrix(llmath.prepare_clipped(clipped))
    return llmath.kl.nats_to_bits_per_byte(variance / 2.0, mean_bytes)


def relation_medians(loglik: np.ndarray, entries: pl.DataFrame, mean_bytes: float) -> dict[str, float]:
    """Median KL (bits/byte, all N texts) of each labelled setting of a dataset; variants one by
    one, unrelated pairs split into same and different model types."""
    full = kl_matrix(llmath.clip(loglik, llmath.clip_threshold(loglik)), mean_bytes)
    variants = entries["variant"].to_list()
    types = entries["model_type"].to_list()
    out = {}
    for cls, (a, b) in rel.labelled_pairs(entries).items():
        kl = full[a, b]
        if cls in (rel.SAME_WEIGHTS, rel.QUANTIZATION):
            groups = {f"{cls}|{v}": np.array([variants[j] == v for j in b]) for v in sorted({variants[j] for j in b})}
        elif cls == rel.UNRELATED:
            same = np.array([types[i] == types[j] for i, j in zip(a, b, strict=True)])
            groups = {f"{cls}|same type": same, f"{cls}|other type": ~same}
        else:
            groups = {cls: np.ones(kl.size, dtype=bool)}
        out.update({key: float(np.median(kl[keep])) for key, keep in groups.items() if keep.any()})
    return out


def embedded():
    import llkl_db

    ds = llkl_db.open().filter("layer IS NULL")
    return ds.loglik.copy(), ds.entries, ds.metadata.mean_text_bytes, True


def full_text_tie(x: np.ndarray, query: int, a: int, b: int) -> bool:
    """Whether entries a and b are tied as the nearest to ``query`` on all N texts: their
    difference of variances, the mean over texts of g_s = (d_b,s - dbar_b)^2 - (d_a,s - dbar_a)^2,
    is within 2 of its SE, SD(g) / sqrt(N) (a or b equal: a tie)."""
    if a == b:
        return True
    da = x[query].astype(np.float64) - x[a]
    db = x[query].astype(np.float64) - x[b]
    g = (db - db.mean()) ** 2 - (da - da.mean()) ** 2
    return abs(float(g.mean())) < 2.0 * float(g.std(ddof=1)) / np.sqrt(g.size)


# --- leave one out --------------------------------------------------------------------------------
def evaluate(
    loglik: np.ndarray,
    entries: pl.DataFrame,
    mean_bytes: float,
    ks,
    clipped: bool = False,
    top: int = 10,
    seed: int = 0,
    max_queries: int | None = None,
    selection: str = "uniform",
    priors: bool = False,
    estimator: str = "assisted",
):
    n = loglik.shape[1]
    if clipped:
        x = loglik.astype(np.float32)
    else:
        x = llmath.clip(loglik, llmath.clip_threshold(loglik))
    full = kl_matrix(x, mean_bytes)
    labelled = rel.labelled_pairs(entries)
    pair_kl = {cls: (a, b, full[a, b]) for cls, (a, b) in labelled.items()}
    frame = entries.select("model_id", "revision", "layer", "variant", "base_model", "model_type")
    metas = frame.to_dicts()
    e = len(metas)
    truth = [
        {j for j in range(e) if j != i and rel.metadata_relation(metas[i], metas[j]) in rel.DERIVED} for i in range(e)
    ]
    ids = entries["entry_id"].to_list()
    queries = np.arange(e)
    if max_queries and e > max_queries:
        queries = np.sort(np.random.default_rng(seed).choice(e, max_queries, replace=False))

    # the new-run check: a run's final entry placed with its whole run (every revision and variant
    # of the model), the models derived from it and those it derives from (a fine-tune's base) left
    # out, so that nothing left is its parent
    def lateness(m: dict) -> tuple:
        digits = "".join(c for c in str(m["revision"] or "") if c.isdigit())
        return (m["revision"] in (None, "main"), int(digits) if digits else -1)

    runs = {}
    for j, m in enumerate(metas):
        if m["variant"] is None and (m["model_id"] not in runs or lateness(m) > lateness(metas[runs[m["model_id"]]])):
            runs[m["model_id"]] = j

    def place_one(i: int, out: np.ndarray, k: int):
        """Place entry i among the entries not in ``out`` (which holds i) from K texts."""
        others = np.setdiff1d(np.arange(e), out)
        keep = {cls: ~(np.isin(a, out) | np.isin(b, out)) for cls, (a, b, _) in pair_kl.items()}
        found_rel = None
        if priors:  # each remaining entry's nearest among the remaining ones
            sub = full[np.ix_(others, others)] + np.diag(np.full(others.size, np.inf))
            nn = others[np.argmin(sub, axis=1)]
            found_rel = rel.nearest_priors(
                [rel.metadata_relation(metas[a], metas[b]) for a, b in zip(others, nn, strict=True)]
            )
        cal = rel.calibrate({cls: v[keep[cls]] for cls, (_, _, v) in pair_kl.items()}, found_rel)
        stored = x[others]
        if selection == "uniform":
            texts = choose_texts(n, k, seed=seed + int(i))
            ranked = rank(stored, texts, x[i, texts], mean_bytes, others.size, estimator)
        else:
            # "scoring" the held-out entry returns its own stored values on the texts asked for
            choice, values = adaptive_texts(stored, lambda t: x[i, t], n, k, seed=seed + int(i))
            ranked = rank(
                stored, choice.text_ids, values, mean_bytes, others.size, estimator, choice.weights, choice.k1
            )
        order, kl, se, _, pair = ranked
        cands = [ids[others[j]] for j in order[:top]]
        _, verdict = judge(cal, ids[i], cands, kl[:top], se[:top], others.size)
        return others, order, kl, se, pair, verdict

    results = []
    for k in ks:
        if k > n:
            continue
        top1 = top1_tie = 0.0
        errs, signed, covered = [], [], []
        named = correct = with_parent = found = 0
        ties_full, flagged, unflagged_right = [], 0, 0
        started = time.perf_counter()
        for i in queries:
            others, order, kl, se, pair, verdict = place_one(int(i), np.array([i]), k)
            est = np.empty(others.size)
            sek = np.empty(others.size)
            sep = np.empty(others.size)
            est[order], sek[order], sep[order] = kl, se, pair
            exact = full[i, others]
            best_full = np.argsort(exact, kind="stable")[:top]
            top1 += float(order[0] == best_full[0])
            # ties: the full-text top two closer than 2 paired SE (the pair's SE, when the estimate's
            # first is one of them), and the estimate flagging its own top two as a tie
            paired = not np.isnan(pair).all()  # the weighted estimator has no paired SE
            if paired and order[0] in best_full[:2]:
                other = best_full[1] if order[0] == best_full[0] else best_full[0]
                ties_full.append(exact[best_full[1]] - exact[best_full[0]] < 2 * sep[other])
            tie = paired and kl[1] - kl[0] < 2 * pair[1]
            flagged += int(tie)
            unflagged_right += int(not tie and order[0] == best_full[0])
            # the full-text answer is itself an estimate from N texts: the estimate's first agrees up
            # to full-text ties when its full-text KL is within 2 full-text paired SE (against the
            # infinite-text value) of the full-text nearest's, i.e. other N texts could swap them
            top1_tie += float(full_text_tie(x, i, others[best_full[0]], others[order[0]]))
            rel_dev = (est[best_full] - exact[best_full]) / np.maximum(exact[best_full], 1e-300)
            errs.extend(np.abs(rel_dev))
            signed.extend(rel_dev)
            covered.extend(np.abs(est[best_full] - exact[best_full]) <= 2 * sek[best_full])
            parent = others[order[0]] if verdict.parent is not None else None
            if truth[i]:
                with_parent += 1
            if parent is not None:
                named += 1
                if parent in truth[i]:
                    correct += 1
                    found += 1
        false_new = 0
        for model_id, i in runs.items():
            out = [
                j
                for j, m in enumerate(metas)
                if m["model_id"] == model_id or m["base_model"] == model_id or j in truth[i]
            ]
            verdict = place_one(i, np.array(out), k)[-1]
            false_new += verdict.parent is not None
        q = len(queries)
        results.append(
            {
                "K": k,
                "selection": selection,
                "estimator": estimator if selection == "uniform" else "weighted",
                "priors": "nearest pairs" if priors else "equal",
                "queries": q,
                "top1_agreement": top1 / q,
                "top1_up_to_full_text_ties": top1_tie / q,
                "full_top2_within_2_paired_se": float(np.mean(ties_full)) if ties_full else float("nan"),
                "flagged_ties": flagged / q if ties_full else float("nan"),
                "top1_unflagged": unflagged_right / (q - flagged) if ties_full else float("nan"),
                "median_rel_error_top10": float(np.median(errs)),
                "mean_signed_rel_error_top10": float(np.mean(signed)),
                "coverage_2se": float(np.mean(covered)),
                "parent_precision": correct / named if named else float("nan"),
                "parent_recall": found / with_parent if with_parent else float("nan"),
                "named": named,
                "with_parent": with_parent,
                "new_runs": len(runs),
                "new_run_false_parents": false_new,
                "seconds": time.perf_counter() - started,
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results


def oracle_bound(loglik: np.ndarray, mean_bytes: float, ks) -> list[dict]:
    """How far any choice of K texts could take strict top-1 agreement: for each entry, the
    chance (normal approximation) that its two full-text nearest a, b swap, when the
    difference of their KLs, the mean over texts of g_s = (d_b,s - dbar_b)^2 - (d_a,s - dbar_a)^2,
    is estimated from K texts drawn uniformly (SD = SD(g) / sqrt(K)) or by the best importance
    sampling, which knows the model on every text (p_s proportional to |g_s - gbar|:
    SD = mean |g - gbar| / sqrt(K)). Only two contenders: an upper bound on agreement."""
    from math import erf, sqrt

    x = llmath.clip(loglik, llmath.clip_threshold(loglik)).astype(np.float64)
    full = llmath.variance_matrix(llmath.prepare_clipped(x.astype(np.float32)))
    e = x.shape[0]
    spread = []
    for i in range(e):
        others = np.delete(np.arange(e), i)
        near = others[np.argsort(full[i, others], kind="stable")[:2]]
        da, db = x[i] - x[near[0]], x[i] - x[near[1]]
        g = (db - db.mean()) ** 2 - (da - da.mean()) ** 2
        spread.append((g.mean(), g.std(), np.abs(g - g.mean()).mean()))
    out = []
    for k in ks:
        swap = [
            [0.5 * (1 + erf(-gap * sqrt(k) / (sd * sqrt(2)))) for gap, sd in ((m, u), (m, o))] for m, u, o in spread
        ]
        uni, ora = np.mean(swap, axis=0)
        out.append({"K": k, "top1_uniform_two_way": 1 - uni, "top1_oracle_is_two_way": 1 - ora})
    return out


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{value:.1%}"


def table(name: str, rows: list[dict]) -> str:
    out = [
        f"{name}",
        "",
        "| selection | estimator | K | top-1 agreement (strict / up to full-text ties) | median rel. error (top 10) | "
        "mean signed rel. error | ±2 SE coverage | parent precision | parent recall | new runs: false parents | "
        "full top-2 within 2 paired SE | flagged ties | top-1 when not flagged |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['selection']} | {r['estimator']} | {r['K']} | {r['top1_agreement']:.1%} / {r['top1_up_to_full_text_ties']:.1%} | "
            f"{r['median_rel_error_top10']:.1%} | {r['mean_signed_rel_error_top10']:+.1%} | {r['coverage_2se']:.1%} | "
            f"{r['parent_precision']:.1%} ({r['named']} named) | {r['parent_recall']:.1%} (of {r['with_parent']}) | "
            f"{r['new_run_false_parents']} of {r['new_runs']} | {_pct(r['full_top2_within_2_paired_se'])} | "
            f"{_pct(r['flagged_ties'])} | {_pct(r['top1_unflagged'])} |"
        )
    return "\n".join(out)


RUNS = {"uniform": ("uniform", "assisted"), "plain": ("uniform", "plain"), "adaptive": ("adaptive", "plain")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--families", type=int, default=16)
    parser.add_argument(
        "--trees", default=",".join(TREES), help=f"comma-separated synthetic trees ({', '.join(TREES)}); '' for none"
    )
    parser.add_argument("--ks", default=",".join(map(str, KS)), help="comma-separated K for the synthetic trees")
    parser.add_argument("--skip-embedded", action="store_true", help="only the synthetic trees")
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument(
        "--runs",
        default="uniform,plain,adaptive",
        help="comma-separated: uniform (assisted estimator), plain (uniform texts, plain estimator), adaptive",
    )
    parser.add_argument(
        "--priors", choices=("equal", "nearest"), default="equal", help="relation priors (nearest: nearest-pair freq.)"
    )
    args = parser.parse_args()
    runs = [RUNS[r] for r in args.runs.split(",")]
    trees = [t for t in args.trees.split(",") if t]
    unknown = sorted(set(trees) - set(TREES))
    if unknown:
        parser.error(f"unknown tree {unknown[0]!r}: expected one of {', '.join(TREES)}")
    ks = tuple(int(v) for v in args.ks.split(","))
    nearest = args.priors == "nearest"
    report: dict = {"synthetic": {}, "synthetic_oracle": {}, "embedded": []}
    texts = []
    for name in trees:
        loglik, entries, b = synthetic(n_families=args.families, tree=TREES[name])
        medians = relation_medians(loglik, entries, b)
        report.setdefault("synthetic_medians", {})[name] = medians
        print(f"synthetic ({name}): {loglik.shape[0]} entries x {loglik.shape[1]} texts, B = {b:.1f}", flush=True)
        rows = []
        for sel, est in runs:
            rows += evaluate(
                loglik, entries, b, ks, max_queries=args.max_queries, selection=sel, priors=nearest, estimator=est
            )
        report["synthetic"][name] = rows
        report["synthetic_oracle"][name] = oracle_bound(loglik, b, ks)
        texts.append(table(f"Synthetic Markov tree, {name} ({loglik.shape[0]} entries, N = 10,000)", rows))
        texts.append(
            f"Median KL of each relation ({name}, bits/byte): "
            + ", ".join(f"{k.replace('|', ': ')} {v:.3g}" for k, v in medians.items())
        )
        texts.append(
            f"Bound on strict top-1 agreement from the two nearest ({name}): "
            + ", ".join(
                f"K = {r['K']}: uniform {r['top1_uniform_two_way']:.1%}, oracle importance sampling "
                f"{r['top1_oracle_is_two_way']:.1%}"
                for r in report["synthetic_oracle"][name]
            )
        )
    if not args.skip_embedded:
        x, entries, b, clipped = embedded()
        print(f"embedded: {x.shape[0]} output entries x {x.shape[1]} texts", flush=True)
        for sel, est in runs:
            report["embedded"] += evaluate(
                x, entries, b, (50, 100), clipped=clipped, selection=sel, priors=nearest, estimator=est
            )
        texts.append(table(f"Embedded ({x.shape[0]} output entries, N = 160)", report["embedded"]))
    text = "\n\n".join(texts)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        args.out.with_suffix(".txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
