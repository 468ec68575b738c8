"""Measure the bias of the KL estimator that its standard error does not cover.

Var_s(l_i - l_j) / 2 estimates KL with two biases beyond sampling noise (method.md, section 2):
- second order: the population variance / 2 differs from the exact (Jeffreys-mean) KL at third
  order in the perturbation, which grows relative to KL as KL grows;
- clipping: L <- max(L, c) at the 2nd percentile of the matrix changes the differences on the
  texts it touches.

The exact-KL Markov-chain family of ``tests/test_math.py`` gives the exact value: texts from a
reference chain, models = perturbed transition matrices, KL in closed form. For each setting
(chain seed, perturbation size eps) this script scores N texts under 5 models, clips like a
dataset does, and compares the estimate with the exact Jeffreys mean for every pair. The
relative bias |est - exact| / exact is then fitted as a + b * KL, so a margin of
a * KL + b * KL^2 covers it; the library uses the fit (``llkl_db.math.kl.bias_margin_bpb``).
KL is taken in bits per byte (one byte per symbol here) for the fit: the second-order term is a
per-symbol effect, so a per-text unit would make the fit depend on the text length.

    python benchmarks/bench_bias.py                  # ~1 minute on 2 cores
    python benchmarks/bench_bias.py --out bench-out/bias.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_math import LENGTHS, _chain, _exact_kl, _exact_variance, _loglik, _perturb, _sample_counts  # noqa: E402

from llkl_db import math as llmath  # noqa: E402

EPS = (0.02, 0.04, 0.08, 0.12, 0.16, 0.2, 0.25, 0.3)
SEEDS = (20250516, 7, 11)
N_TEXTS = 100_000
PERCENTILE = 2.0
MEAN_BYTES = float(LENGTHS.mean())  # one byte per symbol


def measure(seed: int, eps: float, n: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    pi0, p = _chain(rng)
    models = [p] + [_perturb(p, eps, rng) for _ in range(4)]
    first, counts = _sample_counts(pi0, p, n, np.random.default_rng(seed + 1))
    loglik = np.stack([_loglik(first, counts, pi0, q) for q in models]).astype(np.float32)
    threshold = float(np.percentile(loglik, PERCENTILE))
    clipped = np.maximum(loglik, np.float32(threshold))
    rows = []
    for i in range(len(models)):
        for j in range(i + 1, len(models)):
            exact = 0.5 * (_exact_kl(pi0, models[i], models[j]) + _exact_kl(pi0, models[j], models[i]))
            population = 0.5 * _exact_variance(pi0, p, np.log(models[i] / models[j]))
            raw = llmath.pair_kl(loglik[i], loglik[j], 1.0)
            est = llmath.pair_kl(clipped[i], clipped[j], 1.0)
            rows.append(
                {
                    "seed": seed,
                    "eps": eps,
                    "pair": [i, j],
                    "exact_nats": exact,
                    "exact_bpb": llmath.nats_to_bits_per_byte(exact, MEAN_BYTES),
                    "second_order_rel": (population - exact) / exact,
                    "clipping_rel": (est.kl_nats - raw.kl_nats) / exact,
                    "total_rel": (est.kl_nats - exact) / exact,
                    "se_rel": est.se_nats / exact,
                    "z": (est.kl_nats - exact) / est.se_nats,
                }
            )
    return rows


def fit(rows: list[dict]) -> tuple[float, float]:
    """Least squares of |clipping| + |second order| (relative to KL, averaged per seed and eps)
    on (1, KL), then raised so it covers every setting: an envelope, since the margin must cover
    the bias, not its average. The two are added in absolute value (here they have opposite
    signs and partly cancel; elsewhere they need not). Sampling noise is left to the SE."""
    groups = sorted({(r["seed"], r["eps"]) for r in rows})
    kl, rel = [], []
    for g in groups:
        sel = [r for r in rows if (r["seed"], r["eps"]) == g]
        kl.append(np.mean([r["exact_bpb"] for r in sel]))
        rel.append(np.mean([abs(r["clipping_rel"]) + abs(r["second_order_rel"]) for r in sel]))
    kl, rel = np.array(kl), np.array(rel)
    design = np.stack([np.ones_like(kl), kl], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, rel, rcond=None)
    a = max(float(a), 0.0)
    b = max(float(b), 0.0)
    a += max(0.0, float(np.max(rel - (a + b * kl))))  # envelope
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=N_TEXTS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [r for seed in SEEDS for eps in EPS for r in measure(seed, eps, args.n)]
    a, b = fit(rows)
    print(f"N = {args.n} texts, clip at the {PERCENTILE}th percentile, {len(rows)} pairs")
    print(
        f"{'eps':>5} {'KL nats/text':>13} {'bits/byte':>10} {'2nd order':>10} {'clipping':>9} {'total':>8} {'SE':>7} {'z':>6}"
    )
    for eps in EPS:
        sel = [r for r in rows if r["eps"] == eps]
        mean = {
            k: float(np.mean([r[k] for r in sel]))
            for k in ("exact_nats", "exact_bpb", "second_order_rel", "clipping_rel", "total_rel", "se_rel")
        }
        zmax = max(abs(r["z"]) for r in sel)
        print(
            f"{eps:5.2f} {mean['exact_nats']:13.4f} {mean['exact_bpb']:10.5f} {mean['second_order_rel']:+10.2%} {mean['clipping_rel']:+9.2%}"
            f" {mean['total_rel']:+8.2%} {mean['se_rel']:7.2%} {zmax:6.1f}"
        )
    print(f"fit (envelope): |bias| / KL <= a + b * KL  with a = {a:.4f}, b = {b:.4f} (KL in bits/byte)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {"n_texts": args.n, "mean_bytes": MEAN_BYTES, "kl_unit": "bits/byte", "a": a, "b": b, "rows": rows},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
