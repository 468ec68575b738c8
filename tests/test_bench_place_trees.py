"""The synthetic trees of ``benchmarks/bench_place.py`` are what benchmarks/README.md says they are:
the reference tree's relations at method.md's reference medians, the near-lossless tree's 8-bit
copies next to their model and its fine-tunes where its seeds are."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_place.py"

# method.md, reference medians (bits/byte) of the settings the reference tree reproduces
REFERENCE = {
    "fine-tune/continued training|checkpoints": 0.011,
    "same family|seeds": 0.12,
    "fine-tune/continued training|base_model": 0.40,
    "same weights|bnb-8bit": 0.44,
    "quantization|bnb-4bit": 0.49,
    "same family|sizes": 0.48,
    "unrelated|same type": 0.95,
}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_place", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_place"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_place", None)


def medians(bench, tree):
    loglik, entries, mean_bytes = bench.synthetic(tree=tree)
    assert loglik.shape == (288, 10_000)
    return bench.relation_medians(loglik, entries, mean_bytes)


def test_the_reference_tree_sits_at_the_reference_scale(bench):
    found = medians(bench, bench.REFERENCE_TREE)
    for setting, value in REFERENCE.items():
        assert found[setting] == pytest.approx(value, rel=0.05), setting
    # "random pairs, any type ~2.2": the pooled unrelated pairs, of which a quarter share a type
    assert 2.0 < found["unrelated|other type"] < 2.6


def test_the_near_lossless_tree_keeps_its_near_ties(bench):
    found = medians(bench, bench.NEAR_LOSSLESS_TREE)
    assert found["same weights|q8_0"] < 1e-3 * found["same family|seeds"]
    ratio = found["fine-tune/continued training|base_model"] / found["same family|seeds"]
    assert 0.9 < ratio < 1.2
