"""Plans say what they cost before they start: jobs, tokens, FLOPs, GPU-hours and downloads."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from llkl_db.builders.plan import load_plan, parse_plan
from llkl_db.builders.plan_cost import params_from_name, plan_cost
from llkl_db.cli import app
from llkl_db.io.texts import write_texts


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("EleutherAI/pythia-410m", 410e6),
        ("EleutherAI/pythia-6.9b", 6.9e9),
        ("EleutherAI/pythia-410m-seed3", 410e6),
        ("mistralai/Mixtral-8x7B-v0.1", 56e9),
        ("meta-llama/Llama-2-7b-hf", 7e9),
        ("org/CodeLlama13B-Finetune", 13e9),
        ("openai-community/gpt2", None),
    ],
)
def test_params_from_the_model_id(name, params):
    assert params_from_name(name) == (None if params is None else int(params))


def test_the_shipped_plans_cost_what_the_issue_says():
    pythia = plan_cost(load_plan("pythia"))
    assert pythia.n_jobs == 2156 and pythia.n_checkpoints == 2156 and not pythia.unknown_size
    assert 4.5e12 < pythia.download_bytes < 5.5e12  # about 5 TB
    assert pythia.tokens_per_job == pytest.approx(10_000 * 972 / 4)
    assert pythia.flops == pytest.approx(
        sum(2 * params_from_name(j.model_id) * pythia.tokens_per_job for j in load_plan("pythia").jobs)
    )
    assert pythia.gpu_hours == pytest.approx(pythia.flops / (0.4 * 989e12) / 3600)
    models = plan_cost(load_plan("modelmap-1018"))
    assert models.n_jobs == 1018 and 14e12 < models.download_bytes < 18e12  # about 16 TB
    text = "\n".join(models.lines())
    assert "GPU-hours" in text and "TB" in text and "~4 bytes/token" in text and "median size" in text


def test_a_plan_with_its_text_set_uses_its_real_size(tmp_path):
    write_texts(tmp_path / "t.parquet", ["x" * 400] * 8, ["test"] * 8)
    plan = parse_plan({"texts": str(tmp_path / "t.parquet"), "models": [{"model_id": "org/m-1b"}]})
    cost = plan_cost(plan)
    assert cost.n_texts == 8 and cost.mean_tokens == 100 and cost.flops == 2 * 1e9 * 800


def test_dry_run_prints_and_runs_nothing(tmp_path):
    result = CliRunner().invoke(app, ["build", "--plan", "pythia", "--dry-run", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "2,156 jobs" in result.output and "GPU-hours" in result.output and "5.0 TB" in result.output
    assert not (tmp_path / "o").exists()
