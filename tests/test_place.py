"""llkl-db place: the subset estimator (unbiased, honest SE), relations from metadata and the
calibrated classifier, partial shards, the command and its bad input, and one tiny real model
scored resumably."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import synthetic_loglik, write_dataset
from typer.testing import CliRunner

import llkl_db
from llkl_db import relations as rel
from llkl_db.cli import app
from llkl_db.io.vectors import entry_id
from llkl_db.place.estimate import (
    adaptive_texts,
    assisted_variance,
    candidate_set,
    choose_texts,
    disagreement_probabilities,
    draw_second_stage,
    subset_variance,
    texts_for_relative_se,
    weighted_variance,
)
from llkl_db.place.shard import PartialVector, partial_path, read_vector, write_partial

runner = CliRunner()


# --- the estimator ----------------------------------------------------------------------------
def test_subset_variance_is_unbiased_for_the_full_text_value_and_its_se_covers_it():
    rng = np.random.default_rng(1)
    n, k = 1000, 100
    # tails a little heavier than Gaussian; much heavier tails at small K undercover (see README)
    diff = rng.standard_t(10, size=n) * 3.0
    rows = np.zeros((1, n))
    full = float(np.var(diff))  # population variance over the N texts: the dataset's value
    est, inside = [], []
    for rep in range(3000):
        ids = choose_texts(n, k, seed=rep)
        out = subset_variance(rows[:, ids], diff[ids], n)
        est.append(out.var[0])
        inside.append(abs(out.var[0] - full) <= 2 * out.se_full[0])
    assert abs(np.mean(est) - full) < 3 * np.std(est) / np.sqrt(len(est))
    assert 0.88 <= np.mean(inside) <= 0.99
    # all texts: the full-text value exactly, with no sampling error against it
    out = subset_variance(rows, diff, n)
    assert out.var[0] == pytest.approx(full)
    assert out.se_full[0] == 0.0 and out.se_total[0] > 0


def test_assisted_variance_is_nearly_unbiased_tighter_than_the_plain_one_and_its_se_covers():
    rng = np.random.default_rng(2)
    n, k = 2000, 150
    difficulty = -300.0 + 60.0 * rng.standard_t(10, size=n)
    parent = difficulty + 6.0 * rng.standard_normal(n)
    rows = np.stack(
        [parent + s * rng.standard_normal(n) for s in (0.0, 1.0, 1.5, 3.0)]
        + [difficulty + 6.0 * rng.standard_normal(n) for _ in range(4)]
    )
    query = parent + 1.2 * rng.standard_t(10, size=n)
    full = np.var(query[None, :] - rows, axis=1)
    assisted, plain, inside, pair_inside = [], [], [], []
    for rep in range(1500):
        ids = choose_texts(n, k, seed=rep)
        out = assisted_variance(rows, query[ids], ids)
        assisted.append(out.var)
        plain.append(subset_variance(rows[:, ids], query[ids], n).var)
        inside.append(np.abs(out.var - full) <= 2 * out.se_full)
        best = int(np.argmin(out.var))
        diff, true_diff = out.var - out.var[best], full - full[best]
        pair_inside.append(np.abs(diff - true_diff)[np.arange(8) != best] <= 2 * out.se_vs_best[np.arange(8) != best])
    assisted, plain = np.array(assisted), np.array(plain)
    bias = np.abs(assisted.mean(axis=0) - full) / full
    assert bias.max() < 0.01  # a GREG estimator: bias O(p / K) before its correction, here under 1%
    # never noisier; much less noisy for entries the nearest predict the model better than they do
    ratio = assisted.std(axis=0) / plain.std(axis=0)
    assert np.all(ratio < 1.05) and np.all(ratio[3:] < 0.7)
    assert np.all((0.88 <= np.mean(inside, axis=0)) & (np.mean(inside, axis=0) <= 0.99))
    assert 0.88 <= np.mean(pair_inside) <= 0.99
    # all texts: the full-text values up to the residual's degrees of freedom
    out = assisted_variance(rows, query, np.arange(n))
    np.testing.assert_allclose(out.var, full, rtol=1e-2)
    assert np.all(out.se_full == 0.0) and np.all(out.se_total > 0)


def _two_stage(n, k1, k2, p, seed):
    first = choose_texts(n, k1, seed=seed)
    second = draw_second_stage(p, k2, seed=seed)
    return np.concatenate([first, second]), np.concatenate([np.ones(k1), 1.0 / (n * p[second])])


def test_weighted_variance_is_unbiased_and_its_se_covers_it():
    rng = np.random.default_rng(2)
    n, k1, k2 = 1000, 60, 90
    diff = rng.standard_t(10, size=n) * 3.0
    # probabilities steered by values correlated with the differences (as the candidates' are)
    p = disagreement_probabilities(np.stack([np.zeros(n), np.abs(diff) + rng.random(n)]), mix=0.3)
    assert (1.0 / (n * p)).max() <= 1.0 / 0.3 + 1e-9
    rows = np.zeros((1, n))
    full = float(np.var(diff))
    est, inside = [], []
    for rep in range(3000):
        ids, w = _two_stage(n, k1, k2, p, rep)
        out = weighted_variance(rows[:, ids], diff[ids], w, k1, n)
        est.append(out.var[0])
        inside.append(abs(out.var[0] - full) <= 2 * out.se_full[0])
    assert abs(np.mean(est) - full) < 3 * np.std(est) / np.sqrt(len(est))
    assert 0.88 <= np.mean(inside) <= 0.99


def test_weighted_variance_with_unit_weights_is_the_uniform_estimator():
    rng = np.random.default_rng(3)
    n, k = 500, 80
    rows = rng.standard_normal((4, n))
    q = rng.standard_normal(n)
    ids = choose_texts(n, k, seed=1)
    a = subset_variance(rows[:, ids], q[ids], n)
    b = weighted_variance(rows[:, ids], q[ids], np.ones(k), k, n)
    np.testing.assert_allclose(b.var, a.var, rtol=1e-10)
    # all N texts in stage 1: the full-text value, no sampling error against it
    full = weighted_variance(rows, q, np.ones(n), n, n)
    np.testing.assert_allclose(full.var, np.var(q[None] - rows, axis=1), rtol=1e-10)
    assert (full.se_full == 0).all()


def test_adaptive_choice_draws_where_the_candidates_disagree():
    rng = np.random.default_rng(4)
    n = 2000
    stored = rng.standard_normal((6, n))
    stored[1] = stored[0] + np.where(np.arange(n) < 200, 1.0, 0.01) * rng.standard_normal(n)  # disagree on 200
    query = stored[0] + 0.1 * rng.standard_normal(n)
    choice, values = adaptive_texts(stored, lambda ids: query[ids], n, 300, seed=0)
    assert choice.k1 == 90 and choice.text_ids.size == 300
    np.testing.assert_array_equal(values, query[choice.text_ids])
    second = choice.text_ids[choice.k1 :]
    assert (second < 200).mean() > 0.5  # 10% of the texts, most of the second stage
    assert choice.weights.max() <= 1.0 / 0.3 + 1e-9
    est = subset_variance(stored[:, :50], query[:50], n)
    assert candidate_set(est.var, est.se_full)[0] == int(np.argmin(est.var))


def test_text_choice_is_uniform_nested_and_bounded():
    a, b = choose_texts(1000, 50, seed=3), choose_texts(1000, 200, seed=3)
    assert set(a) <= set(b) and len(set(b)) == 200 and b.min() >= 0 and b.max() < 1000
    for bad in (9, 1001):
        with pytest.raises(ValueError):
            choose_texts(1000, bad)
    assert texts_for_relative_se(3.0, 10_000) == 197  # Gaussian differences: 2 / 0.1^2, corrected for N
    assert texts_for_relative_se(50.0, 160) == 155 and texts_for_relative_se(1.0001, 160) == 10


# --- relations --------------------------------------------------------------------------------
def _m(model_id, revision="main", variant=None, base=None, mtype="llama", layer=None):
    return {
        "model_id": model_id,
        "revision": revision,
        "variant": variant,
        "base_model": base,
        "model_type": mtype,
        "layer": layer,
    }


@pytest.mark.parametrize(
    "a,b,want",
    [
        (_m("o/x"), _m("o/x", variant="bfloat16"), rel.SAME_WEIGHTS),
        (_m("o/x"), _m("o/x", variant="q8_0"), rel.SAME_WEIGHTS),
        (_m("o/x", variant="q8_0"), _m("o/x", variant="q4_0"), rel.QUANTIZATION),
        (_m("o/x", "step1"), _m("o/x", "step2"), rel.FINE_TUNE),
        (_m("o/x-chat", base="o/x"), _m("o/x"), rel.FINE_TUNE),
        (_m("o/x-seed1"), _m("o/x-seed2"), rel.SAME_FAMILY),
        (_m("o/x-70m"), _m("o/x-1.4b"), rel.SAME_FAMILY),
        (_m("o/x", mtype="llama"), _m("g/y", mtype="gemma3_text"), rel.UNRELATED),
        (_m("o/x"), _m("g/y"), None),  # same type, no link: the classifier decides
        (_m("o/x", layer=3), _m("o/x"), rel.LAYER),
    ],
)
def test_metadata_relation(a, b, want):
    assert rel.metadata_relation(a, b) == want
    assert rel.metadata_relation(b, a) == want


def test_calibration_falls_back_to_the_reference_scale_and_says_so():
    cal = rel.calibrate({})
    assert cal.source == "reference scale" and "reference scale" in cal.describe()
    assert rel.classify(cal, 0.0005).relation == rel.SAME_WEIGHTS
    assert rel.classify(cal, 5.0).relation == rel.UNRELATED
    mixed = rel.calibrate({rel.UNRELATED: np.array([2.0, 3.0, 4.0, 5.0])})
    assert mixed.fits[rel.UNRELATED].source == "dataset" and mixed.source == "mixed"
    p, corrected = rel.provenance_p_value(mixed, 0.001, 100)
    assert p < corrected < 0.05
    p, corrected = rel.provenance_p_value(mixed, 3.0, 100)
    assert corrected > 0.5


def test_the_outermost_classes_hold_beyond_their_centres():
    # a narrow class near 0 and a wide one further out: the wide Gaussian's tail is higher at
    # KL -> 0, yet a value below every centre is the innermost class, above every centre the outermost
    cal = rel.calibrate(
        {
            rel.SAME_WEIGHTS: np.array([0.001, 0.0011, 0.0009, 0.001]),
            rel.FINE_TUNE: np.exp(np.random.default_rng(0).normal(np.log(0.08), 2.5, 50)),
            rel.UNRELATED: np.array([20.0, 30.0, 40.0, 25.0]),
        }
    )
    assert rel.classify(cal, 7e-12).relation == rel.SAME_WEIGHTS
    assert rel.classify(cal, 1e-5).relation == rel.SAME_WEIGHTS
    assert rel.classify(cal, 1e4).relation == rel.UNRELATED
    assert rel.classify(cal, 0.001).relation == rel.SAME_WEIGHTS


def test_a_verdict_never_contradicts_the_metadata():
    from llkl_db.place.place import judge

    # the fine-tune sits as far from its base as unrelated models do: the KL cannot confirm the
    # link, the metadata state it, and the verdict says both instead of "no parent"
    cal = rel.calibrate({rel.UNRELATED: np.array([0.5, 1.0, 2.0, 4.0])})
    query = _m("me/tuned", base="o/base")
    base = _m("o/base")
    args = (cal, "me/tuned", ["o/base@main"], np.array([1.2]), np.array([0.1]), 50)
    _, stated = judge(*args, query_meta=query, candidate_meta=[base])
    assert stated.parent == "o/base@main" and stated.relation == rel.FINE_TUNE and stated.p_corrected > 0.05
    assert "according to the metadata" in stated.text and "does not confirm" in stated.text
    _, blind = judge(*args)  # no metadata: the data alone name no parent
    assert blind.parent is None and "no parent" in blind.text


def test_a_stated_parent_is_the_checkpoint_not_its_quantized_copy():
    from llkl_db.place.place import judge

    # the fine-tune's nearest entry is its base's Q5_0 copy; the metadata say "fine-tune of o/base",
    # so the verdict names o/base@main (3rd here) and quotes that entry's KL
    query = _m("me/tuned", base="o/base")
    metas = [_m("o/base", variant="q5_0"), _m("other/x"), _m("o/base"), _m("o/base", variant="q4_0")]
    names = ["o/base@main:q5_0", "other/x@main", "o/base@main", "o/base@main:q4_0"]
    kl, se = np.array([1.10, 1.15, 1.23, 1.4]), np.full(4, 0.09)
    far = rel.calibrate({rel.UNRELATED: np.array([0.5, 1.0, 2.0, 4.0])})  # not confirmed by the KL
    near = rel.calibrate({rel.UNRELATED: np.array([20.0, 30.0, 40.0, 50.0])})  # confirmed
    for cal in (far, near):
        _, verdict = judge(cal, "me/tuned", names, kl, se, 40, query_meta=query, candidate_meta=metas)
        assert verdict.parent == verdict.candidate == "o/base@main" and verdict.relation == rel.FINE_TUNE
        assert "o/base@main" in verdict.text and ":q5_0" not in verdict.text
        assert "KL 1.23" in verdict.text.replace("(", "")
    # without the checkpoint's own entry among the candidates, the copy is named
    _, verdict = judge(far, "me/tuned", names[:2], kl[:2], se[:2], 40, query_meta=query, candidate_meta=metas[:2])
    assert verdict.parent == "o/base@main:q5_0"


def test_nearest_pair_priors_are_smoothed_and_optional():
    assert rel.nearest_priors([None, "logit-lens layer"]) == {}
    pri = rel.nearest_priors([rel.FINE_TUNE] * 10)
    assert sum(pri.values()) == pytest.approx(1.0)
    assert pri[rel.FINE_TUNE] == max(pri.values()) > 0.4 and min(pri.values()) >= 0.5 / len(
        rel.CLASSES
    )  # none ruled out
    fits = {rel.FINE_TUNE: [0.02, 0.021, 0.019, 0.022], rel.SAME_FAMILY: [0.02, 0.018, 0.022, 0.021]}
    flat = rel.calibrate(fits)
    tilted = rel.calibrate(fits, pri)
    assert rel.posterior(tilted, 0.02)[rel.FINE_TUNE] > rel.posterior(flat, 0.02)[rel.FINE_TUNE]
    assert flat.to_dict()["priors"] == "equal"


def test_nearest_level_never_contradicts_the_metadata():
    ds = llkl_db.open()
    table = ds.nearest("google/gemma-3-270m", k=12).table
    levels = dict(zip(table["entry_id"], table["level"], strict=True))
    # different model types: unrelated, whatever the value (0.68 bits/byte)
    assert levels["HuggingFaceTB/SmolLM2-135M-Instruct@gguf-q4_1"] == rel.UNRELATED
    assert levels["google/gemma-3-270m@gguf-q4_k_m:bfloat16"] == rel.SAME_WEIGHTS
    assert levels["google/gemma-3-270m@gguf-q4_k_m:q4_0"] == rel.QUANTIZATION
    assert set(table["basis"]) <= {"metadata", "dataset", "reference scale", "mixed"}


# --- partial shards and the command -----------------------------------------------------------
@pytest.fixture()
def family(tmp_path) -> tuple[Path, np.ndarray, list[dict]]:
    """A dataset of 3 families (base, its q4 and q8 variants, a fine-tune, a seed) on 300 texts;
    the held-out vector is family 0's base model at another checkpoint."""
    rng = np.random.default_rng(0)
    n = 300
    base = synthetic_loglik(1, n, seed=5)[0].astype(np.float64)
    rows, vectors = [], []
    for f in range(3):
        fam = base + 8.0 * rng.standard_normal(n)
        for suffix, noise, extra in [
            ("", 0.0, {}),
            ("", 0.3, {"variant": "q8_0"}),
            ("", 2.0, {"variant": "q4_0"}),
            ("-seed1", 3.0, {}),
        ]:
            model = f"org/fam{f}{suffix}"
            rows.append({"entry_id": entry_id(model, "main", None, extra.get("variant")), "model_id": model, **extra})
            rows[-1]["model_type"] = ["llama", "gpt2", "gpt_neox"][f]
            vectors.append(fam + noise * rng.standard_normal(n))
        tuned = f"org/fam{f}-tuned"
        rows.append({"entry_id": entry_id(tuned, "main"), "model_id": tuned, "base_model": f"org/fam{f}"})
        rows[-1]["model_type"] = ["llama", "gpt2", "gpt_neox"][f]
        vectors.append(fam + 4.0 * rng.standard_normal(n))
    loglik = np.minimum(np.stack(vectors), -1.0)
    root = write_dataset(tmp_path / "ds", loglik, rows)
    query = np.minimum(loglik[0] + 0.5 * rng.standard_normal(n), -1.0)
    return root, query, rows


def _shard(path: Path, root: Path, ids: np.ndarray, values: np.ndarray, **meta) -> Path:
    ds = llkl_db.open(root)
    key = ds.folder.text_set_key
    row = {
        "entry_id": "new/model@main",
        "model_id": "new/model",
        "revision": "main",
        "text_set": key.name,
        "text_set_sha256": key.sha256,
        "bos_policy": "bos",
        **meta,
    }
    write_partial(path, PartialVector(row, ids, values))
    return path


def test_place_vector_names_the_parent(family, tmp_path):
    root, query, _ = family
    ids = choose_texts(300, 120, seed=0)
    shard = _shard(partial_path(tmp_path / "save", "new/model@main"), root, ids, query[ids])
    back = read_vector(tmp_path / "save", llkl_db.open(root).folder.text_set_key, 300)
    np.testing.assert_array_equal(back.text_ids, ids)
    out = runner.invoke(app, ["place", "--vector", str(shard), "--dataset", str(root), "--json", "-k", "5"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["n_texts_used"] == 120
    first = result["neighbours"][0]
    assert first["entry_id"].startswith("org/fam0@main")
    assert result["verdict"]["parent"] is not None and result["verdict"]["parent"].startswith("org/fam0@main")
    assert result["verdict"]["p_corrected"] < 0.05
    assert all(r["se_bpb"] > 0 for r in result["neighbours"])
    table = runner.invoke(app, ["place", "--vector", str(tmp_path / "save"), "--dataset", str(root), "--texts", "50"])
    assert table.exit_code == 0, table.output
    assert "placed from 50 of 300 texts" in table.output
    # adaptive needs the texts it draws: a full vector works, a partial shard says what is missing
    full = _shard(tmp_path / "full.parquet", root, np.arange(300), query)
    args = ["place", "--vector", str(full), "--dataset", str(root), "--selection", "adaptive", "--texts", "120"]
    out = runner.invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["neighbours"][0]["entry_id"].startswith("org/fam0@main") and result["n_texts_used"] == 120
    assert any("adaptive choice" in line for line in result["notes"])
    out = runner.invoke(app, [*args[:2], str(shard), *args[3:]])
    assert out.exit_code != 0 and "adaptive choice needs" in out.output


def test_place_bad_input_is_one_line(family, tmp_path):
    root, query, _ = family
    ids = np.arange(300)
    good = _shard(tmp_path / "good.parquet", root, ids, query)
    nan = query.copy()
    nan[7] = np.nan
    cases = [
        (["place"], "either MODEL or --vector"),
        (["place", "--vector", str(good), "--texts", "5"], "--texts 5"),
        (["place", "--vector", str(good), "--texts", "301"], "--texts 301"),
        (["place", "--vector", str(tmp_path / "none.parquet")], "no such file"),
        (["place", "--vector", str(_shard(tmp_path / "nan.parquet", root, ids, nan))], "non-finite"),
        (
            ["place", "--vector", str(_shard(tmp_path / "other.parquet", root, ids, query, text_set_sha256="ab" * 32))],
            "text set",
        ),
        (
            ["place", "--vector", str(_shard(tmp_path / "eos.parquet", root, ids, query, bos_policy="eos"))],
            "bos_policy",
        ),
        (["place", "--vector", str(good), "--where", "model_id = 'nobody'"], "no entries"),
        (["place", "--vector", str(good), "--estimator", "nope"], "--estimator 'nope'"),
        (["place", "no/such-model-xyz", "--texts", "20", "--device", "cpu"], ""),
    ]
    for args, message in cases:
        out = runner.invoke(app, [*args, "--dataset", str(root)])
        assert out.exit_code != 0, (args, out.output)
        assert "Traceback" not in out.output
        lines = [line for line in out.output.splitlines() if line.startswith("Error")]
        assert len(lines) == 1, (args, out.output)
        assert message in lines[0], (args, out.output)


def test_place_without_labelled_pairs_uses_the_reference_scale(tmp_path):
    loglik = synthetic_loglik(6, 200, seed=2)
    rows = [{"entry_id": f"org/m{i}@main", "model_id": f"org/m{i}", "model_type": "llama"} for i in range(6)]
    root = write_dataset(tmp_path / "ds", loglik, rows)
    shard = _shard(tmp_path / "v.parquet", root, np.arange(200), loglik[0] - 0.1)
    out = runner.invoke(app, ["place", "--vector", str(shard), "--dataset", str(root)])
    assert out.exit_code == 0, out.output
    assert "reference scale" in out.output


def test_place_scores_a_tiny_model_resumably(tmp_path):
    pytest.importorskip("torch")
    from tiny_models import save_tiny

    from llkl_db.io.texts import write_texts  # noqa: F401  (the dataset's text set is written by helpers)

    model = save_tiny(tmp_path / "llama", "llama")
    n = 40
    loglik = synthetic_loglik(4, n, seed=3)
    root = write_dataset(tmp_path / "ds", loglik)
    save = tmp_path / "save"
    args = ["place", str(model), "--dataset", str(root), "--save", str(save), "--device", "cpu", "--quiet"]
    first = runner.invoke(app, [*args, "--texts", "12", "--json"])
    assert first.exit_code == 0, first.output
    shard = next((save / "partial").glob("*.parquet"))
    assert read_vector(shard, llkl_db.open(root).folder.text_set_key, n).n_scored == 12
    # a larger K resumes: the 12 texts already scored are among the 20 chosen, and are not scored again
    second = runner.invoke(app, [*args, "--texts", "20"])
    assert second.exit_code == 0, second.output
    assert "resuming" in second.output and "scoring 8 text(s)" in second.output
    assert read_vector(shard, llkl_db.open(root).folder.text_set_key, n).n_scored == 20
    # adaptive: two rounds of scoring, the second only on texts not scored in the first
    adaptive = runner.invoke(
        app, [*args[:4], "--device", "cpu", "--quiet", "--selection", "adaptive", "--texts", "30", "--json"]
    )
    assert adaptive.exit_code == 0, adaptive.output
    result = json.loads(adaptive.stdout)
    assert result["n_texts_used"] == 30 and any("adaptive choice" in line for line in result["notes"])
    # the dataset's entries conditioned the first token on EOS: refused before scoring
    rows = [{"entry_id": f"org/m{i}@main", "bos_policy": "eos"} for i in range(4)]
    eos = write_dataset(tmp_path / "eos", loglik, rows)
    refused = runner.invoke(app, ["place", str(model), "--dataset", str(eos), "--texts", "10", "--device", "cpu"])
    assert refused.exit_code != 0 and "bos_policy" in refused.output and "Traceback" not in refused.output


def test_build_completes_a_partial_shard_scoring_only_the_missing_texts(tmp_path):
    pytest.importorskip("torch")
    from tiny_models import save_tiny

    model = save_tiny(tmp_path / "llama", "llama")
    n = 30
    root = write_dataset(tmp_path / "ds", synthetic_loglik(4, n, seed=3))
    key = llkl_db.open(root).folder.text_set_key
    save = tmp_path / "save"
    placed = runner.invoke(
        app,
        [
            "place",
            str(model),
            "--dataset",
            str(root),
            "--save",
            str(save),
            "--device",
            "cpu",
            "--quiet",
            "--texts",
            "12",
        ],
    )
    assert placed.exit_code == 0, placed.output
    shard = next((save / "partial").glob("*.parquet"))
    partial = read_vector(shard, key, n)
    # shifted values: the build must take them from the shard, not score those texts again
    write_partial(shard, PartialVector(partial.meta, partial.text_ids, partial.loglik - 1.0, partial.n_tokens))
    build = [
        "build",
        str(model),
        "--texts",
        str(next((root / "texts").glob("*.parquet"))),
        "--device",
        "cpu",
        "--quiet",
    ]
    out = runner.invoke(app, [*build, "--out", str(save)])
    assert out.exit_code == 0, out.output
    marker = json.loads(next((save / "done").glob("*.json")).read_text())
    assert marker["texts_from_partial_shard"] == 12 and not shard.exists()
    completed = read_vector(save, key, n)
    clean = runner.invoke(app, [*build, "--out", str(tmp_path / "clean")])
    assert clean.exit_code == 0, clean.output
    full = read_vector(tmp_path / "clean", key, n)
    assert completed.meta["entry_id"] == full.meta["entry_id"] == partial.meta["entry_id"]
    reused = np.isin(np.arange(n), partial.text_ids)
    np.testing.assert_allclose(completed.loglik[reused], full.loglik[reused] - 1.0, rtol=0, atol=1e-4)
    np.testing.assert_allclose(completed.loglik[~reused], full.loglik[~reused], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(completed.n_tokens, full.n_tokens)
    # a partial shard scored otherwise (another dtype) is refused in one line, and left in place
    other = tmp_path / "other"
    write_partial(
        other / "partial" / shard.name,
        PartialVector({**partial.meta, "dtype": "bfloat16"}, partial.text_ids, partial.loglik, partial.n_tokens),
    )
    refused = runner.invoke(app, [*build, "--out", str(other)])
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert "a partial shard with dtype bfloat16, this build's is float32" in refused.output
    assert (other / "partial" / shard.name).exists() and not list(other.glob("vectors/**/*.parquet"))


def test_place_killed_mid_scoring_resumes_to_the_same_answer(tmp_path):
    pytest.importorskip("torch")
    import os
    import signal
    import subprocess
    import sys
    import time

    from tiny_models import save_tiny

    model = save_tiny(tmp_path / "llama", "llama")
    n = 160  # ten chunks of 16 texts
    rng = np.random.default_rng(4)
    texts = [" ".join(f"w{rng.integers(1000)}" for _ in range(12)) for _ in range(n)]
    root = write_dataset(tmp_path / "ds", synthetic_loglik(4, n, seed=3), texts=texts)
    key = llkl_db.open(root).folder.text_set_key

    def command(save: Path) -> list[str]:
        return [sys.executable, "-m", "llkl_db.cli", "place", str(model), "--dataset", str(root), "--save", str(save)]

    args = ["--device", "cpu", "--quiet", "--texts", str(n), "--json"]
    save = tmp_path / "killed"
    proc = subprocess.Popen(
        [*command(save), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list(save.glob("partial/*.parquet")):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    shard = next(save.glob("partial/*.parquet"))
    before = read_vector(shard, key, n)
    assert 0 < before.n_scored < n and before.n_scored % 16 == 0, "the kill should land mid-scoring"
    assert [p.name for p in save.rglob("*")] == ["partial", shard.name]  # nothing half-written beside it
    again = subprocess.run([*command(save), *args], capture_output=True, text=True, check=True)
    assert f"resuming from {shard}: {before.n_scored} text(s) already scored" in again.stderr
    assert f"scoring {n - before.n_scored} text(s)" in again.stderr
    after = read_vector(shard, key, n)
    np.testing.assert_array_equal(after.text_ids, np.arange(n))  # none lost, none twice
    clean = subprocess.run([*command(tmp_path / "clean"), *args], capture_output=True, text=True, check=True)
    uninterrupted = read_vector(tmp_path / "clean", key, n)
    np.testing.assert_allclose(after.loglik, uninterrupted.loglik, rtol=1e-6)
    resumed, plain = json.loads(again.stdout), json.loads(clean.stdout)
    assert [r["entry_id"] for r in resumed["neighbours"]] == [r["entry_id"] for r in plain["neighbours"]]
    np.testing.assert_allclose(
        [r["kl_bpb"] for r in resumed["neighbours"]], [r["kl_bpb"] for r in plain["neighbours"]], rtol=1e-5
    )
    assert resumed["verdict"]["text"] == plain["verdict"]["text"]


def test_relation_calibration_honours_the_filter(family, tmp_path):
    root, query, _ = family
    shard = _shard(tmp_path / "v.parquet", root, np.arange(300), query)
    args = ["place", "--vector", str(shard), "--dataset", str(root), "--json"]

    def placed(*where: str) -> dict:
        out = runner.invoke(app, [*args, *where])
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout)

    whole = placed()["calibration"]
    assert "of this dataset" in whole and "fine-tune/continued training: dataset (3 pairs)" in whole
    assert "unrelated: dataset (30 pairs)" in whole
    # two families: their unrelated pairs remain, each derived class has too few and says so
    two = placed("--where", "model_id NOT LIKE 'org/fam2%'")
    assert "of the 10 entries the filter keeps" in two["calibration"]
    assert "unrelated: dataset (11 pairs)" in two["calibration"]
    assert "fine-tune/continued training: reference scale" in two["calibration"] and two["notes"]
    one = placed("--where", "model_id LIKE 'org/fam0%'")
    assert any("reference scale" in n and "too few labelled pairs in the 5 entries" in n for n in one["notes"])
    ds = llkl_db.open(root)
    assert ds.filter("model_id NOT LIKE 'org/fam2%'").calibration.fits[rel.UNRELATED].n_pairs == 11
    assert ds.filter("entry_id IS NOT NULL").calibration is ds.calibration  # all kept: the dataset's own


def test_place_estimators_agree_on_the_nearest_and_a_bad_one_is_refused(family):
    from llkl_db.errors import BadValueError
    from llkl_db.place.place import place

    root, query, _ = family
    ds = llkl_db.open(root)
    ids = choose_texts(300, 120, seed=0)
    assisted = place(ds, ids, query[ids], k=3)
    plain = place(ds, ids, query[ids], k=3, estimator="plain")
    assert assisted.table["entry_id"][0] == plain.table["entry_id"][0]
    assert (assisted.table["se_vs_first_bpb"][0] == 0.0) and (assisted.table["se_vs_first_bpb"][1:] > 0).all()
    with pytest.raises(BadValueError, match="estimator 'nope'"):
        place(ds, ids, query[ids], estimator="nope")


def test_a_hostile_partial_shard_is_refused_in_one_line(family, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root, query, _ = family
    good = _shard(tmp_path / "good.parquet", root, np.arange(50), query[:50])
    table = pq.read_table(good)

    def rewrite(name: str, **columns) -> Path:
        out = table
        for column, value in columns.items():
            out = out.set_column(
                out.schema.get_field_index(column), column, pa.array([value], out.schema.field(column).type)
            )
        path = tmp_path / name
        pq.write_table(out, path)
        return path

    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[:-40])
    two_rows = tmp_path / "two.parquet"
    pq.write_table(pa.concat_tables([table, table]), two_rows)
    cases = [
        (rewrite("repeated.parquet", text_ids=[3] * 50), "repeated text ids"),
        (rewrite("range.parquet", text_ids=[*range(251, 300), 999]), "must lie in"),
        (rewrite("positive.parquet", loglik=[5.0] * 50), "positive log-likelihood"),
        (rewrite("short.parquet", text_ids=list(range(49))), "49 texts"),
        (truncated, "truncated.parquet"),
        (two_rows, "place reads one vector"),
    ]
    for path, message in cases:
        before = path.read_bytes()
        out = runner.invoke(app, ["place", "--vector", str(path), "--dataset", str(root)])
        assert out.exit_code != 0, (path.name, out.output)
        lines = [line for line in out.output.splitlines() if line.startswith("Error")]
        assert len(lines) == 1 and message in lines[0], (path.name, out.output)
        assert "Traceback" not in out.output
        assert path.read_bytes() == before  # refused, not rewritten
