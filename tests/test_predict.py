"""Predicting benchmark scores: the ridge algebra against the primal closed form, grouped folds,
and the end-to-end command on an imported dataset whose vectors carry the score."""

from __future__ import annotations

import json

import numpy as np
import pytest
from modelmap_files import write_modelmap
from typer.testing import CliRunner

import llkl_db
from llkl_db.cli import app
from llkl_db.errors import LlklError
from llkl_db.importers import import_modelmap
from llkl_db.predict import group_folds, predict_score, ridge_cv_predict
from llkl_db.predict.ridge import KernelRidge, centred_blocks

runner = CliRunner()


def test_dual_ridge_equals_primal_closed_form():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 50))
    y = rng.standard_normal(12)
    train, test = np.arange(9), np.arange(9, 12)
    gram = x @ x.T
    gc_tt, gc_st = centred_blocks(gram, train, test)
    model = KernelRidge(gc_tt, y[train])
    alpha_rel = 0.3
    pred = model.predict(gc_st, [alpha_rel])[0]
    # primal: centre features and y on the training rows, w = (X^T X + a I)^-1 X^T y
    mu, ym = x[train].mean(axis=0), y[train].mean()
    xc = x[train] - mu
    a = alpha_rel * model.scale
    w = np.linalg.solve(xc.T @ xc + a * np.eye(50), xc.T @ (y[train] - ym))
    np.testing.assert_allclose(pred, (x[test] - mu) @ w + ym, rtol=1e-8, atol=1e-8)


def test_group_folds_keep_groups_together_and_cover_everything():
    groups = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] * 1 + ["e"] * 2
    folds = group_folds(groups, 3)
    assert len(folds) == 3
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(groups)))
    for fold in folds:
        inside = {groups[i] for i in fold}
        assert all(groups[j] not in inside for other in folds if other is not fold for j in other)
    assert len(group_folds(groups, 10)) == 5
    with pytest.raises(ValueError):
        group_folds(["a", "a"], 5)


def test_signal_is_found_and_noise_is_not():
    rng = np.random.default_rng(1)
    k, n = 60, 200
    latent = rng.standard_normal(k)
    x = np.outer(latent, rng.standard_normal(n)) + 0.3 * rng.standard_normal((k, n))
    groups = [f"t{i % 6}" for i in range(k)]
    pred, alphas = ridge_cv_predict(x, 3 * latent + 0.2 * rng.standard_normal(k), groups, n_folds=6)
    assert np.corrcoef(pred, latent)[0, 1] > 0.9 and len(alphas) == 6
    target = rng.standard_normal(k)
    noise, _ = ridge_cv_predict(x, target, groups, n_folds=6)
    assert np.corrcoef(noise, target)[0, 1] < 0.5


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    write_modelmap(root / "files", k=48, n=60, seed=3)
    import_modelmap(root / "files", root / "ds")
    return root / "ds"


def test_predict_score_reaches_a_high_correlation(dataset):
    result = predict_score(llkl_db.open(dataset), "score_v1_MMLU", n_folds=6)
    assert result.n_models == 48 and result.n_groups == 6 and result.n_folds == 6
    assert result.pearson_r > 0.8 and result.rmse < result.baseline_rmse
    assert result.predictions.height == 48


def test_predict_cli(dataset):
    result = runner.invoke(app, ["predict", "score_v1_ARC", "--dataset", str(dataset), "--folds", "6"])
    assert result.exit_code == 0, result.output
    assert "r = " in result.output and "48 models" in result.output
    result = runner.invoke(app, ["predict", "score_v1_ARC", "--dataset", str(dataset), "--json"])
    payload = json.loads(result.stdout)
    assert payload["pearson_r"] > 0.8 and len(payload["predictions"]) == 48


def test_unknown_score_and_missing_table(dataset, tmp_path):
    with pytest.raises(LlklError, match="score_v1_MMLU"):
        predict_score(llkl_db.open(dataset), "nope")
    from contrib_helpers import good_dataset

    plain = good_dataset(tmp_path / "plain")
    result = runner.invoke(app, ["predict", "score_v1_MMLU", "--dataset", str(plain)])
    assert result.exit_code == 1 and "model_scores" in result.output and "Traceback" not in result.output


def test_predict_one_model_with_its_cross_validated_error(dataset):
    ds = llkl_db.open(dataset)
    some = ds.entries["model_id"][5]
    full = predict_score(ds, "score_v1_MMLU", n_folds=6)
    one = predict_score(ds, "score_v1_MMLU", n_folds=6, model=some)
    assert one.n_models == full.n_models - 1 and one.actual is not None  # its own score left out
    assert one.entry_id.startswith(some) and one.alpha is not None
    assert abs(one.predicted - one.actual) < 3 * one.rmse
    result = runner.invoke(
        app, ["predict", "score_v1_MMLU", "--model", some, "--dataset", str(dataset), "--folds", "6"]
    )
    assert result.exit_code == 0, result.output
    assert f"predicted score_v1_MMLU = {one.predicted:.4g} ± {one.rmse:.2g}" in result.stdout
    payload = json.loads(
        runner.invoke(
            app, ["predict", "score_v1_MMLU", "-m", some, "-d", str(dataset), "--folds", "6", "--json"]
        ).stdout
    )
    assert payload["predicted"] == pytest.approx(one.predicted) and payload["actual"] == one.actual


def test_a_penalty_at_the_edge_of_its_grid_is_warned(dataset, monkeypatch):
    from llkl_db.predict.predict import edge_warning
    from llkl_db.predict.ridge import DEFAULT_ALPHAS

    assert edge_warning([DEFAULT_ALPHAS[3], DEFAULT_ALPHAS[5]]) is None
    assert "largest of its grid" in edge_warning([DEFAULT_ALPHAS[-1], DEFAULT_ALPHAS[2]])
    assert "smallest of its grid" in edge_warning([DEFAULT_ALPHAS[0]])
    # a score that is pure noise: the best penalty is the largest one
    import llkl_db.predict.ridge as ridge

    monkeypatch.setattr(ridge, "best_alpha", lambda *a, **k: DEFAULT_ALPHAS[-1])
    result = runner.invoke(app, ["predict", "score_v1_ARC", "--dataset", str(dataset), "--folds", "6"])
    assert result.exit_code == 0 and "warning: the ridge penalty chosen in 6 of 6 fits is the largest" in result.stderr


def test_predict_for_an_unknown_model_is_one_line_with_the_closest_names(dataset):
    result = runner.invoke(app, ["predict", "score_v1_MMLU", "--model", "no/such-model", "--dataset", str(dataset)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "no/such-model" in lines[0]
    assert "Traceback" not in result.output and result.stdout == ""
