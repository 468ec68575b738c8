"""Training runs for the embedded dataset, weight distances between checkpoints (streamed,
float64) against a direct computation, and merge carrying the tables over."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import yaml

pytest.importorskip("torch")

import torch  # noqa: E402
from tiny_models import save_tiny, tiny_model  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import llkl_db  # noqa: E402
from llkl_db.builders.build import BuildOptions  # noqa: E402
from llkl_db.builders.plan import load_plan, parse_plan  # noqa: E402
from llkl_db.builders.run import run_jobs  # noqa: E402
from llkl_db.builders.training.schedule import lr_at, pythia_steps  # noqa: E402
from llkl_db.builders.training.spec import parse_training, plan_models  # noqa: E402
from llkl_db.builders.weights import checkpoint_pairs, sq_distance  # noqa: E402
from llkl_db.cli import app  # noqa: E402
from llkl_db.errors import LlklError  # noqa: E402
from llkl_db.io.tables import read_weight_distances  # noqa: E402
from llkl_db.merge import merge  # noqa: E402
from llkl_db.textsets import load_text_set  # noqa: E402


def test_pythia_like_steps_and_lr_schedule():
    assert pythia_steps(1024, 128) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 640, 768, 896, 1024]
    assert pythia_steps(20, 8) == [0, 1, 2, 4, 8, 16, 20]
    assert lr_at(16, 1.0, 32, 100, 0.1) == pytest.approx(0.5)
    assert lr_at(100, 1.0, 32, 100, 0.1) == pytest.approx(0.1)
    assert checkpoint_pairs(4, 2) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]


def test_sq_distance_streams_and_matches_a_direct_computation(tmp_path):
    for arch in ("llama", "gpt2"):
        a, b = tmp_path / f"{arch}-a", tmp_path / f"{arch}-b"
        tiny_model(arch, seed=0).save_pretrained(a)
        torch.manual_seed(1)
        model_b = tiny_model(arch, seed=1)
        model_b.save_pretrained(b)
        from transformers import AutoModelForCausalLM

        pa = dict(AutoModelForCausalLM.from_pretrained(a).named_parameters())
        pb = dict(AutoModelForCausalLM.from_pretrained(b).named_parameters())
        direct = sum(float(((pb[k].detach().double() - pa[k].detach().double()) ** 2).sum()) for k in pa)
        got, count = sq_distance(a, b)
        assert got == pytest.approx(direct, rel=1e-12)
        assert count == sum(p.numel() for p in pa.values())
        assert sq_distance(a, a)[0] == 0.0
    with pytest.raises(LlklError, match="different tensors"):
        sq_distance(tmp_path / "llama-a", tmp_path / "gpt2-a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LlklError, match="no safetensors"):
        sq_distance(tmp_path / "empty", tmp_path / "llama-a")


TINY = {
    "out": "PLACEHOLDER",
    "tokenizer": {"vocab_size": 320, "sources": ["jargon"]},
    "pretrain": {
        "steps": {"final": 10, "every": 5},
        "batch": {"size": 2, "length": 32},
        "lr": {"peak": 0.003, "warmup": 2, "final_fraction": 0.1},
        "runs": [
            {"name": "t-llama", "arch": "llama", "hidden": 32, "layers": 2, "heads": 2, "ffn": 64, "seeds": [0, 1]}
        ],
    },
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny training run (two seeds, 6 checkpoints each) from the held-out Jargon File."""
    from llkl_db.builders.training.run import train_all

    root = tmp_path_factory.mktemp("train")
    raw = json.loads(json.dumps(TINY))
    raw["out"] = str(root / "training")
    spec = parse_training(raw)
    try:
        summary = train_all(spec, jobs=1, log=lambda m: None)
    except LlklError as exc:  # the Debian corpora are installed by builders/texts/install_corpora.sh
        pytest.skip(str(exc))
    assert summary.trained == ["t-llama-seed0", "t-llama-seed1"]
    return root, raw, spec


def test_training_writes_checkpoints_that_the_plan_scores(trained):
    root, raw, spec = trained
    steps = [0, 1, 2, 4, 8, 10]
    assert spec.pretrain.steps == steps
    for run in spec.pretrain.runs:
        assert sorted(p.name for p in spec.run_dir(run).iterdir() if p.is_dir()) == sorted(f"step{s}" for s in steps)
        record = json.loads((spec.run_dir(run) / "run.json").read_text())
        assert record["steps"] == steps and record["n_params"] > 0
    a = spec.checkpoint_dir(spec.pretrain.runs[0], 10)
    b = spec.checkpoint_dir(spec.pretrain.runs[1], 10)
    assert sq_distance(a, b)[0] > 0  # seeds differ
    from llkl_db.builders.training.run import train_all

    again = train_all(spec, jobs=1, log=lambda m: None)  # resumable: nothing to do
    assert again.trained == [] and len(again.skipped) == 2

    plan = {"texts": "mini", "defaults": {"dtype": "float32", "device": "cpu"}, "models": plan_models(spec)}
    jobs = parse_plan(plan).jobs
    assert len(jobs) == 2 * len(steps) and jobs[3].training_step == 4 and jobs[3].seed == 0
    texts = load_text_set("mini")
    out = root / "build"
    few = [j for j in jobs if j.training_step in (0, 8, 10)]
    summary = run_jobs(few, texts, out, BuildOptions(device="cpu", progress=False))
    assert not summary.failed and len(summary.finished) == 6
    plan_file = root / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(plan))
    result = CliRunner().invoke(app, ["weight-distances", "--plan", str(plan_file), "--out", str(out), "--window", "2"])
    assert result.exit_code == 0, result.output
    table = read_weight_distances(out)
    assert table.height == 2 * (5 + 4)  # 6 checkpoints, window 2: 5 + 4 pairs per run
    row = table.filter(
        (pl.col("model_id") == "llkl-db/t-llama-seed0") & (pl.col("step_a") == 8) & (pl.col("step_b") == 10)
    )
    direct = sq_distance(spec.checkpoint_dir(spec.pretrain.runs[0], 8), a)[0]
    assert row["sq_distance"][0] == pytest.approx(direct) and row["revision_b"][0] == "step10"
    again = CliRunner().invoke(app, ["weight-distances", "--plan", str(plan_file), "--out", str(out), "--window", "2"])
    assert "0 new pair(s)" in again.output and read_weight_distances(out).height == table.height

    merged = root / "dataset"
    merge([out], merged, dataset_version="0.1.0")
    assert read_weight_distances(merged).height == table.height
    ds = llkl_db.open(merged)
    from llkl_db import analysis

    t = analysis.trajectory(ds, "llkl-db/t-llama", weights=True)
    assert [r.model_id for r in t.runs] == ["llkl-db/t-llama-seed0", "llkl-db/t-llama-seed1"]
    assert t.runs[0].fits.height >= 0 and t.runs[0].checkpoints["w_sq_prev"][2] == pytest.approx(
        direct
    )  # scored: steps 0, 8, 10


def test_merge_joins_tables_of_several_inputs(trained, tmp_path):
    root, _, _ = trained
    build = root / "build"
    if not (build / "tables").is_dir():
        pytest.skip("needs the build of the previous test")
    other = tmp_path / "other"
    import shutil

    shutil.copytree(build / "texts", other / "texts")
    (other / "vectors").mkdir(parents=True)
    shutil.copytree(build / "tables", other / "tables")
    first = read_weight_distances(build)
    changed = first.with_columns(pl.col("sq_distance") * 2)
    from llkl_db.io.tables import WEIGHT_DISTANCES, write_table

    write_table(other / "tables" / "weight_distances.parquet", WEIGHT_DISTANCES, changed.head(3))
    merge([build, other], tmp_path / "ds")
    merged = read_weight_distances(tmp_path / "ds")
    assert merged.height == first.height  # same keys: the later input's rows replace the earlier ones
    assert (
        merged.join(changed.head(3), on=["model_id", "revision_a", "revision_b"])["sq_distance"].to_list()
        == changed.head(3)["sq_distance"].to_list()
    )


def test_weight_distances_bad_input(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"texts": "mini", "models": [{"model_id": "a/b", "source": str(tmp_path / "x")}]}))
    result = CliRunner().invoke(app, ["weight-distances", "--plan", str(plan), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no training run with local checkpoint folders" in result.output
    plan.write_text(
        yaml.safe_dump(
            {
                "texts": "mini",
                "models": [
                    {"model_id": "a/b", "source": str(tmp_path / f"s{i}"), "revision": f"step{i}"} for i in (1, 2)
                ],
            }
        )
    )
    result = CliRunner().invoke(app, ["weight-distances", "--plan", str(plan), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no such checkpoint folder" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["train", "--plan", str(plan)])
    assert result.exit_code == 1 and "no 'training' section" in result.output
    result = CliRunner().invoke(app, ["weight-distances", "--plan", str(plan), "--window", "0"])
    assert result.exit_code == 1 and "--window 0: must be at least 1" in result.output


def test_bad_training_sections_are_rejected():
    with pytest.raises(LlklError, match="unknown key"):
        parse_training({**TINY, "colour": 1})
    bad = json.loads(json.dumps(TINY))
    bad["pretrain"]["runs"][0]["arch"] = "rnn"
    with pytest.raises(LlklError, match="arch"):
        parse_training(bad)
    bad = json.loads(json.dumps(TINY))
    del bad["pretrain"]["steps"]
    with pytest.raises(LlklError, match="missing 'steps'"):
        parse_training(bad)


def test_embedded_plan_scores_everything_it_trains(capsys):
    """The shipped plan's trained entries are exactly those of its training section, as plan_yaml prints them."""
    from llkl_db.builders.plan import read_plan
    from llkl_db.builders.training import plan_yaml

    raw, _ = read_plan("embedded")
    spec = parse_training(raw["training"])
    assert len({r.seed for r in spec.pretrain.runs}) >= 3
    assert spec.pretrain.steps[:11] == [0] + [2**i for i in range(10)]
    trained = [m for m in raw["models"] if str(m.get("source", "")).startswith(str(spec.out))]
    assert trained == plan_models(spec)
    plan_yaml.main(["embedded"])
    printed = yaml.safe_load("models:\n" + capsys.readouterr().out)["models"]
    assert printed == trained
    jobs = load_plan("embedded").jobs
    ft = [j for j in jobs if j.model_id == "llkl-db/SmolLM2-135M-Instruct-bible"]
    assert len(ft) == 1 and ft[0].base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert any(j.model_id == "HuggingFaceTB/SmolLM2-135M-Instruct" for j in jobs)  # the parent is in the plan


def test_save_tiny_checkpoints_of_one_shape(tmp_path):
    # A model folder written by save_tiny works as a weight-distance source too.
    save_tiny(tmp_path / "a", "gpt_neox")
    save_tiny(tmp_path / "b", "gpt_neox")
    assert sq_distance(tmp_path / "a", tmp_path / "b")[0] == 0.0  # same seed, same weights
    assert np.isfinite(sq_distance(tmp_path / "a", tmp_path / "b")[1])
