"""Plans, shards, resumable runs (a SIGKILL mid-run), failures recorded, merge into a dataset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("torch")

from tiny_models import save_tiny  # noqa: E402

import llkl_db  # noqa: E402
from llkl_db.builders.build import BuildOptions  # noqa: E402
from llkl_db.builders.plan import (  # noqa: E402
    load_plan,
    parse_layers,
    parse_plan,
    parse_shard,
    read_plan,
    shard_jobs,
    single_model_plan,
)
from llkl_db.builders.run import run_jobs  # noqa: E402
from llkl_db.cli import app  # noqa: E402
from llkl_db.errors import BadValueError, LlklError  # noqa: E402
from llkl_db.io.texts import write_texts  # noqa: E402
from llkl_db.merge import merge  # noqa: E402
from llkl_db.textsets import load_text_set  # noqa: E402

TEXTS = [f"Text {i}: the quick brown fox jumps over {i} lazy dogs." for i in range(12)]


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("assets")
    for arch in ("llama", "gpt2", "gpt_neox"):
        save_tiny(root / arch, arch)
    write_texts(root / "tiny.parquet", TEXTS, ["test"] * len(TEXTS))
    return root


def plan_for(assets: Path, **extra) -> dict:
    return {
        "texts": str(assets / "tiny.parquet"),
        "models": [
            {
                "model_id": "tiny/llama",
                "source": str(assets / "llama"),
                "revision": "local",
                "variants": [None, "bfloat16"],
                "layers": [0, 1],
            },
            {"model_id": "tiny/gpt2", "source": str(assets / "gpt2"), "revisions": ["step1", "step2"]},
            {"model_id": "tiny/neox", "source": str(assets / "gpt_neox"), "revision": "local", **extra},
        ],
    }


def entry_ids(folder: Path) -> list[str]:
    files = sorted((folder / "vectors").rglob("*.parquet"))
    return sorted(pl.concat([pl.read_parquet(f, columns=["entry_id"]) for f in files])["entry_id"].to_list())


def test_plan_expands_models_revisions_variants_and_layers(assets):
    plan = parse_plan(plan_for(assets))
    assert [j.key for j in plan.jobs] == [
        "tiny/llama@local",
        "tiny/llama@local:bfloat16",
        "tiny/gpt2@step1",
        "tiny/gpt2@step2",
        "tiny/neox@local",
    ]
    assert plan.jobs[0].layers == (0, 1) and plan.jobs[1].layers == ()  # lens layers for the reference variant
    assert plan.jobs[2].training_step == 1


def test_shards_partition_the_plan(assets):
    jobs = parse_plan(plan_for(assets)).jobs
    parts = [shard_jobs(jobs, (i, 3)) for i in range(3)]
    assert sorted(j.key for part in parts for j in part) == sorted(j.key for j in jobs)
    assert parts == [shard_jobs(jobs, (i, 3)) for i in range(3)]  # deterministic


@pytest.mark.parametrize("bad", ["3/3", "x/2", "1", "-1/2"])
def test_bad_shard_is_rejected(bad):
    with pytest.raises(BadValueError, match="shard") as caught:
        parse_shard(bad)
    assert caught.value.param == "shard" and caught.value.value == bad


@pytest.mark.parametrize(
    ("given", "layers"),
    [(None, ()), ("none", ()), ("all", "all"), ("0,6,12", (0, 6, 12)), ([0, 6], (0, 6)), (3, (3,)), ("7", (7,))],
)
def test_one_layer_parser_for_plans_and_the_command_line(given, layers):
    assert parse_layers(given) == layers


@pytest.mark.parametrize("bad", ["x", "0,a", ["a"], "1.5"])
def test_bad_layers_are_rejected(bad):
    with pytest.raises(BadValueError, match="expected none, all or a list") as caught:
        parse_layers(bad)
    assert caught.value.param == "layers"


def test_single_model_plan(assets):
    local = single_model_plan(str(assets / "llama"), layers="0,1", variant="q8_0")
    assert local.texts == "mini" and local.device is None and len(local.jobs) == 1
    job = local.jobs[0]
    assert (job.model_id, job.source, job.revision, job.variant) == ("llama", str(assets / "llama"), "local", "q8_0")
    assert job.layers == (0, 1)
    hub = single_model_plan("org/model", revision="step5", model_id="org/renamed", texts="other", dtype="float16")
    assert hub.texts == "other"
    assert hub.jobs[0].key == "org/renamed@step5" and hub.jobs[0].source is None and hub.jobs[0].dtype == "float16"
    with pytest.raises(BadValueError, match="unknown variant") as caught:
        single_model_plan("org/model", variant="q9_9")
    assert caught.value.param == "variant"


def test_an_offline_model_is_recorded_as_the_embedded_dataset_records_it():
    # offline:NAME is loaded from its GGUF but recorded under its Hub id and GGUF revision label,
    # so that `place offline:NAME` meets its own embedded entries as the same model
    job = single_model_plan("offline:smollm2-135m-instruct", variant="q4_0").jobs[0]
    assert (job.model_id, job.source, job.revision) == (
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "offline:smollm2-135m-instruct",
        "gguf-q4_1",
    )
    embedded = llkl_db.open().entries
    for name in ("smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"):
        key = single_model_plan(f"offline:{name}").jobs[0].key
        assert key in embedded["entry_id"].to_list(), key
    # an explicit id and revision win; the model is still loaded from the offline source
    mine = single_model_plan("offline:gemma3-270m", revision="r1", model_id="me/gemma").jobs[0]
    assert (mine.model_id, mine.source, mine.revision) == ("me/gemma", "offline:gemma3-270m", "r1")
    with pytest.raises(LlklError, match="unknown offline model 'nope'"):
        single_model_plan("offline:nope")


def test_plans_reject_unknown_variants_before_running():
    with pytest.raises(BadValueError, match="unknown variant; known: bfloat16, float16, q8_0"):
        parse_plan({"texts": "x", "models": [{"model_id": "a", "variants": [None, "Q8_0"]}]})


def test_one_reader_for_plan_files_and_shipped_plans(tmp_path):
    raw, path = read_plan("embedded")
    assert path.name == "embedded.yaml" and "training" in raw and raw["models"]
    own = tmp_path / "own.yaml"
    own.write_text("texts: mini\nmodels: [{model_id: a}]\n")
    assert read_plan(own) == ({"texts": "mini", "models": [{"model_id": "a"}]}, own)
    assert load_plan(own).jobs[0].key == "a@main"


def test_bad_plans_are_rejected(assets, tmp_path):
    with pytest.raises(LlklError, match="unknown key"):
        parse_plan({"texts": "x", "models": [{"model_id": "a", "colour": "red"}]})
    with pytest.raises(LlklError, match="more than once"):
        parse_plan({"texts": "x", "models": [{"model_id": "a"}, {"model_id": "a"}]})
    broken = tmp_path / "broken.yaml"
    broken.write_text("texts: [unclosed")
    with pytest.raises(LlklError, match="broken.yaml"):
        load_plan(broken)


def test_shipped_plans_load():
    assert len(load_plan("modelmap-1018").jobs) == 1018
    pythia = load_plan("pythia")
    assert "EleutherAI/pythia-410m@step143000" in {j.key for j in pythia.jobs}
    assert len({j.key for j in pythia.jobs}) == len(pythia.jobs) == 5 * 154 + 9 * 154
    embedded = {j.key for j in load_plan("embedded").jobs}
    assert {"google/gemma-3-270m@gguf-q4_k_m:q4_0", "HuggingFaceTB/SmolLM2-135M-Instruct@gguf-q4_1"} <= embedded


def test_failures_are_recorded_and_the_run_goes_on(assets, tmp_path):
    raw = plan_for(assets)
    raw["models"].insert(0, {"model_id": "missing/model", "source": str(tmp_path / "nowhere")})
    plan = parse_plan(raw)
    summary = run_jobs(plan.jobs, load_text_set(plan.texts), tmp_path / "out", BuildOptions(progress=False))
    assert list(summary.failed) == ["missing/model@main"]
    assert len(summary.finished) == 5
    log = (tmp_path / "out" / "failures.jsonl").read_text().splitlines()
    assert len(log) == 1 and "missing/model@main" in log[0]
    again = run_jobs(plan.jobs, load_text_set(plan.texts), tmp_path / "out", BuildOptions(progress=False))
    assert len(again.skipped) == 5 and list(again.failed) == ["missing/model@main"]


def test_sigkill_mid_run_resumes_without_loss_or_duplicates(assets, tmp_path):
    import yaml

    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(plan_for(assets)))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "llkl_db.cli", "build", "--plan", str(plan_file), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "done").glob("*.json")) if (out / "done").is_dir() else []) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list((out / "done").glob("*.json")))
    assert 2 <= done_before < 5, "the kill should land mid-run"
    assert not list(out.rglob("*.tmp")) or all(p.name.startswith(".") for p in out.rglob("*.tmp"))
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ids = entry_ids(out)
    assert len(ids) == len(set(ids)) == 7  # 5 job outputs + 2 lens layers
    expected = run_jobs(
        parse_plan(plan_for(assets)).jobs,
        load_text_set(str(assets / "tiny.parquet")),
        tmp_path / "clean",
        BuildOptions(progress=False),
    )
    assert not expected.failed and entry_ids(tmp_path / "clean") == ids


def test_merge_builds_a_dataset_that_opens_and_refuses_duplicates(assets, tmp_path):
    jobs = parse_plan(plan_for(assets)).jobs
    texts = load_text_set(str(assets / "tiny.parquet"))
    for i in range(2):
        run_jobs(shard_jobs(jobs, (i, 2)), texts, tmp_path / f"shard{i}", BuildOptions(progress=False))
    meta = merge([tmp_path / "shard0", tmp_path / "shard1"], tmp_path / "ds", dataset_version="1.0.0")
    ds = llkl_db.open(tmp_path / "ds")
    assert len(ds) == 7 and meta.clip_threshold is not None
    assert ds.nearest("tiny/llama", k=3).table.height == 3
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "config_name: layers" in card and "config_name: texts" in card
    before = sorted(p.name for p in (tmp_path / "ds").rglob("*.parquet"))
    with pytest.raises(LlklError, match="duplicate entry id"):
        merge([tmp_path / "shard0"], tmp_path / "ds")
    assert sorted(p.name for p in (tmp_path / "ds").rglob("*.parquet")) == before  # nothing half-written
    other = tmp_path / "other"
    (other / "texts").mkdir(parents=True)
    write_texts(other / "texts" / "tiny.parquet", TEXTS[:-1], ["test"] * (len(TEXTS) - 1))
    with pytest.raises(LlklError, match="differs"):
        merge([tmp_path / "shard0", other], tmp_path / "ds2")
    assert not (tmp_path / "ds2").exists()


def test_build_cli_single_model_and_bad_input(assets, tmp_path):
    from typer.testing import CliRunner

    runner = CliRunner()
    out = tmp_path / "out"
    ok = runner.invoke(
        app,
        [
            "build",
            str(assets / "llama"),
            "--texts",
            str(assets / "tiny.parquet"),
            "--out",
            str(out),
            "--layers",
            "0",
            "--model-id",
            "tiny/llama",
            "--quiet",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert entry_ids(out) == ["tiny/llama@local", "tiny/llama@local:L0"]
    assert "1 job built (2 entries written), 0 already done, 0 failed" in ok.stderr  # entries, not only jobs
    for args, message in [
        (["build"], "either MODEL or --plan"),
        (["build", str(assets / "llama"), "--layers", "x", "--texts", str(assets / "tiny.parquet")], "--layers"),
        (
            ["build", str(assets / "llama"), "--batch-size", "0", "--texts", str(assets / "tiny.parquet")],
            "--batch-size",
        ),
        (["build", str(assets / "llama"), "--texts", "no-such-set"], "no such text set"),
        (["build", "--plan", str(tmp_path / "none.yaml")], "none.yaml"),
        (["build", "--plan", "embedded", "--shard", "x/2"], "--shard 'x/2': expected i/n"),
        (["build", str(assets / "llama"), "--shard", "0/2"], "--shard applies to --plan"),
        (["build", str(assets / "llama"), "--variant", "q9_9"], "--variant 'q9_9': unknown variant; known: bfloat16"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code != 0
        assert message in result.output and "Traceback" not in result.output


def test_merge_cli_bad_input_is_one_line_and_leaves_the_target_alone(assets, tmp_path):
    from typer.testing import CliRunner

    jobs = parse_plan(plan_for(assets)).jobs[:2]
    run_jobs(jobs, load_text_set(str(assets / "tiny.parquet")), tmp_path / "shard", BuildOptions(progress=False))
    runner = CliRunner()
    ok = runner.invoke(app, ["merge", str(tmp_path / "shard"), "--out", str(tmp_path / "ds"), "--version", "1.0.0"])
    assert ok.exit_code == 0, ok.output
    before = sorted((p.name, p.stat().st_size) for p in (tmp_path / "ds").rglob("*") if p.is_file())
    for args, message in [
        ([str(tmp_path / "missing"), "--out", str(tmp_path / "ds")], "no such folder"),
        ([str(tmp_path / "shard"), "--out", str(tmp_path / "ds")], "duplicate entry id"),
        ([str(tmp_path / "shard"), "--out", str(tmp_path / "ds2"), "--version", "one"], "is not X.Y.Z"),
    ]:
        result = runner.invoke(app, ["merge", *args])
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output
    assert sorted((p.name, p.stat().st_size) for p in (tmp_path / "ds").rglob("*") if p.is_file()) == before


def test_build_bos_policy_skip_first_records_it(assets, tmp_path):
    import numpy as np
    from typer.testing import CliRunner

    runner = CliRunner()
    args = ["build", str(assets / "gpt_neox"), "--texts", str(assets / "tiny.parquet"), "--quiet", "--device", "cpu"]
    for policy, out in (("auto", tmp_path / "bos"), ("skip-first", tmp_path / "skip")):
        result = runner.invoke(app, [*args, "--out", str(out), "--bos-policy", policy])
        assert result.exit_code == 0, result.output
    bos, skip = (pl.read_parquet(next((tmp_path / d / "vectors").rglob("*.parquet"))) for d in ("bos", "skip"))
    assert bos["bos_policy"][0] == "bos" and skip["bos_policy"][0] == "skip-first"
    np.testing.assert_array_equal(skip["n_tokens"].to_numpy()[0], bos["n_tokens"].to_numpy()[0] - 1)
    bad = runner.invoke(app, [*args, "--out", str(tmp_path / "bad"), "--bos-policy", "first"])
    assert bad.exit_code != 0 and "bos" in bad.output and not (tmp_path / "bad").exists()
