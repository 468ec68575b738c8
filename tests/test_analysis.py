"""Analyses of arXiv 2505.15353 as queries: the exponent fit on fractional Brownian motion,
trajectories, layers, the scale on a dataset whose settings are known, maps, bad input."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from helpers import write_dataset
from typer.testing import CliRunner

import llkl_db
from llkl_db import analysis
from llkl_db.analysis.exponent import fit_loglog, window_fits
from llkl_db.analysis.jumps import jump_keep_mask
from llkl_db.analysis.settings import family_of, variant_setting
from llkl_db.cli import app
from llkl_db.errors import LlklError, UnknownEntryError
from llkl_db.io.tables import upsert_weight_distances
from llkl_db.io.vectors import entry_id

STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 640, 768, 896, 1024]
N = 400
# The fitted exponent of a fractional Brownian motion with Hurst index H is 2H. With N = 400
# independent components each squared increment is a mean of 400 chi-square terms (relative
# noise ~7%), so over log-spaced lags spanning 1..1000 the slope is within 0.1 of 2H.
TOLERANCE = 0.1


def fbm(times, hurst: float, n: int, rng) -> np.ndarray:
    """n independent fractional Brownian motions at ``times`` (> 0): exact, by Cholesky."""
    t = np.asarray(times, dtype=np.float64)
    two_h = 2 * hurst
    cov = 0.5 * (t[:, None] ** two_h + t[None, :] ** two_h - np.abs(t[:, None] - t[None, :]) ** two_h)
    return np.linalg.cholesky(cov + 1e-12 * np.eye(t.size)) @ rng.standard_normal((t.size, n))


def fbm_path(hurst: float, seed: int, steps=STEPS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([np.zeros(N), fbm(steps[1:], hurst, N, rng)])


@pytest.mark.parametrize("hurst", [0.2, 0.35, 0.5])
def test_exponent_fit_recovers_2h_on_fractional_brownian_motion(hurst):
    path = fbm_path(hurst, seed=1)
    sq = ((path[:, None, :] - path[None, :, :]) ** 2).mean(axis=2)  # mean squared displacement
    fits = window_fits(np.array(STEPS), sq, window=10)
    assert len(fits) == len(STEPS) - 3  # every start with at least 3 later checkpoints
    full = [f.c for i, f in fits if f.n == 10]
    assert abs(np.median(full) - 2 * hurst) < TOLERANCE
    assert min(f.r2 for _, f in fits if f.n == 10) > 0.9


def test_fit_loglog_exact_power_law_and_degenerate_input():
    delta = np.array([1.0, 2.0, 4.0, 8.0])
    fit = fit_loglog(delta, 3.0 * delta**0.7)
    assert fit.c == pytest.approx(0.7) and fit.r2 == pytest.approx(1.0) and fit.n == 4
    assert np.isnan(fit_loglog(np.array([1.0]), np.array([1.0])).c)
    assert fit_loglog(delta, np.array([1.0, 0.0, np.nan, 2.0])).n == 2  # non-positive and NaN left out


def test_jump_mask_drops_the_largest_jumps_after_warmup():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 100))
    x[3, 7] += 50.0  # a jump between steps 2 and 3 (after warm-up)
    x[1, 9] += 80.0  # a jump before warm-up: not counted
    keep = jump_keep_mask(x, np.array([0, 1, 2, 3, 4]), after_step=2, fraction=0.01)
    assert not keep[7] and keep[9] and keep.sum() == 99
    assert jump_keep_mask(x, np.arange(5), after_step=99, fraction=0.03).all()


# --- a synthetic dataset with known settings ------------------------------------------------


def _row(model, revision="main", **kw) -> dict:
    return {
        "entry_id": entry_id(model, revision, kw.get("layer"), kw.get("variant")),
        "model_id": model,
        "revision": revision,
        **kw,
    }


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """Two seeds of a run with 15 checkpoints (fBm, H = 0.35), a family of two sizes with
    variants and layers, a fine-tune of one of them, and a model of another type."""
    rng = np.random.default_rng(7)
    base = -300 + 60 * rng.standard_normal(N)
    rows, vectors = [], []

    def add(row, deviation):
        rows.append(row)
        vectors.append(base + deviation)

    for seed in (0, 1):
        path = fbm_path(0.35, seed=10 + seed)
        for step, p in zip(STEPS, path, strict=True):
            add(_row(f"org/run-seed{seed}", f"step{step}", step=step, seed=seed, model_type="tiny"), 3.0 * p)
    fam = 8.0 * rng.standard_normal(N)
    add(_row("org/fam-1b", model_type="fam", n_params=10**9, n_layers=2), fam)
    add(_row("org/fam-7b", model_type="fam", n_params=7 * 10**9), fam + 4.0 * rng.standard_normal(N))
    for variant, scale in (("q8_0", 0.5), ("q4_0", 2.0), ("bfloat16", 0.1)):
        add(_row("org/fam-1b", variant=variant, model_type="fam", n_params=10**9), fam + scale * rng.standard_normal(N))
    for layer in (0, 1):
        add(_row("org/fam-1b", layer=layer, model_type="fam", n_layers=2), 30.0 * rng.standard_normal(N))
    add(
        _row("org/child", base_model="org/fam-1b", model_type="fam", n_params=10**9), fam + 3.0 * rng.standard_normal(N)
    )
    add(_row("other/x-1b", model_type="x", n_params=10**9), 20.0 * rng.standard_normal(N))
    root = write_dataset(tmp_path_factory.mktemp("known"), np.array(vectors), rows, clip_threshold=-1e6)
    return root


def test_trajectory_recovers_the_exponent_and_compares_seeds(known):
    ds = llkl_db.open(known)
    t = analysis.trajectory(ds, "org/run")
    assert [r.model_id for r in t.runs] == ["org/run-seed0", "org/run-seed1"]
    for run in t.runs:
        assert run.checkpoints["step"].to_list() == STEPS
        assert run.checkpoints["kl_final_bpb"][-1] == 0.0 and run.checkpoints["kl_prev_bpb"][0] is None
        assert abs(run.summary()["c_median"] - 0.7) < TOLERANCE
        assert run.fits["r2"].min() > 0.8
    assert t.seeds is not None and t.seeds["step"].to_list() == STEPS and t.seeds["kl_median"][0] == 0.0
    only = analysis.trajectory(ds, "org/run", seed=1)
    assert [r.model_id for r in only.runs] == ["org/run-seed1"] and only.seeds is None
    kl = ds.kl("org/run-seed0@step0", "org/run-seed0@step1024")
    assert t.runs[0].checkpoints["kl_final_bpb"][0] == pytest.approx(kl.kl_bpb, rel=1e-6)


def test_trajectory_preprocessing_drops_texts_and_recomputes_b(known):
    ds = llkl_db.open(known)
    t = analysis.trajectory(ds, "org/run-seed0", drop_jumps=0.03)
    assert t.dropped_texts == 12 and t.n_texts == N - 12
    assert abs(t.runs[0].summary()["c_median"] - 0.7) < TOLERANCE


def test_trajectory_with_weight_distances(known, tmp_path):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(known, root)
    rows = []
    for i, a in enumerate(STEPS):
        for b in STEPS[i + 1 : i + 11]:
            rows.append(
                {
                    "model_id": "org/run-seed0",
                    "revision_a": f"step{a}",
                    "step_a": a,
                    "revision_b": f"step{b}",
                    "step_b": b,
                    "sq_distance": 5.0 * (b - a) ** 0.9,
                    "n_params": 1000,
                }
            )
    upsert_weight_distances(root, rows)
    t = analysis.trajectory(llkl_db.open(root), "org/run", weights=None)
    w = t.runs[0]
    assert w.has_weights and not t.runs[1].has_weights
    assert w.fits["c_w"].to_numpy() == pytest.approx(0.9)
    assert w.fits["ratio"].to_numpy() == pytest.approx(w.fits["c"].to_numpy() / 0.9)
    with pytest.raises(LlklError, match="no weight distances for org/run-seed1"):
        analysis.trajectory(llkl_db.open(root), "org/run", weights=True)


def test_scale_groups_entries_into_the_right_settings(known):
    ds = llkl_db.open(known)
    pairs = analysis.setting_pairs(ds.entries)
    ids = ds.entries["entry_id"].to_list()

    def named(setting):
        p = pairs[setting]
        return sorted(tuple(sorted((ids[a], ids[b]))) for a, b in zip(p.a, p.b, strict=True))

    # 14 consecutive pairs per run: early when the later step <= 102, late when the earlier >= 512
    assert len(named("consecutive early checkpoints")) == 2 * 7
    assert len(named("consecutive late checkpoints")) == 2 * 4
    assert named("random seeds") == [("org/run-seed0@step1024", "org/run-seed1@step1024")]
    assert named("8-bit quantization") == [("org/fam-1b@main", "org/fam-1b@main:q8_0")]
    assert named("4-bit quantization") == [("org/fam-1b@main", "org/fam-1b@main:q4_0")]
    assert named("bfloat16 cast") == [("org/fam-1b@main", "org/fam-1b@main:bfloat16")]
    assert named("fine-tuned child vs parent") == [("org/child@main", "org/fam-1b@main")]
    assert named("model sizes within a family") == [("org/fam-1b@main", "org/fam-7b@main")]
    assert named("adjacent layers") == [
        ("org/fam-1b@main", "org/fam-1b@main:L1"),
        ("org/fam-1b@main:L0", "org/fam-1b@main:L1"),
    ]
    # same type: fam-1b/fam-7b are one family, child another (its parent pair is the fine-tune's)
    assert named("same model type") == [("org/child@main", "org/fam-7b@main")]
    assert len(named("any two models")) == 15 - 3  # 6 models: all pairs but two within a family and the fine-tune
    table = analysis.scale_table(ds).table
    assert table["setting"].to_list()[:3] == [
        "consecutive late checkpoints",
        "consecutive early checkpoints",
        "random seeds",
    ]
    q8 = table.filter(pl.col("setting") == "8-bit quantization").row(0, named=True)
    q4 = table.filter(pl.col("setting") == "4-bit quantization").row(0, named=True)
    assert q8["reference_bpb"] == 0.44 and q8["n_pairs"] == 1 and q8["median_bpb"] < q4["median_bpb"]
    assert table.filter(pl.col("setting") == "bfloat16 cast")["reference_bpb"][0] is None
    sampled = analysis.scale_table(ds, max_pairs=3)
    assert sampled.sampled["consecutive early checkpoints"] == 14


def test_setting_names_helpers():
    assert family_of("EleutherAI/pythia-1.4b-seed3") == family_of("EleutherAI/pythia-410m") == "eleutherai/pythia"
    assert family_of("HuggingFaceTB/SmolLM2-135M-Instruct") == "huggingfacetb/smollm2-instruct"
    assert variant_setting("bnb-8bit") == "8-bit quantization" and variant_setting("q5_0") == "5-bit quantization"
    assert variant_setting("float16") == "float16 cast"


def test_the_embedded_plan_pairs_the_two_qwen_sizes_as_one_family():
    """The embedded plan's Qwen2.5-Coder 0.5B and 1.5B are 'model sizes within a family'; no other
    pair of its real models is (their metadata as the build writes it, no model loaded)."""
    from llkl_db.analysis.settings import ANY, SAME_TYPE, SIZES, model_pairs
    from llkl_db.builders.plan import load_plan

    jobs = [j for j in load_plan("embedded").jobs if j.source and j.source.startswith("offline:") and not j.variant]
    ids = [j.model_id for j in jobs]
    assert family_of("Qwen/Qwen2.5-Coder-0.5B-Instruct") == family_of("Qwen/Qwen2.5-Coder-1.5B-Instruct")
    params = {"Qwen/Qwen2.5-Coder-0.5B-Instruct": 630_167_424, "Qwen/Qwen2.5-Coder-1.5B-Instruct": 1_777_088_000}
    entries = pl.DataFrame(
        {
            "model_id": ids,
            "revision": [j.revision for j in jobs],
            "step": [None] * len(jobs),
            "layer": [None] * len(jobs),
            "variant": [None] * len(jobs),
            "model_type": [j.model_type for j in jobs],
            "n_params": [params.get(m, 100 + i) for i, m in enumerate(ids)],
            "base_model": [j.base_model for j in jobs],
        },
        schema_overrides={"step": pl.Int64, "layer": pl.Int32, "variant": pl.String},
    )
    pairs = model_pairs(entries)
    named = {k: {frozenset((ids[a], ids[b])) for a, b in zip(v.a, v.b, strict=True)} for k, v in pairs.items()}
    qwen = frozenset(params)
    assert named[SIZES] == {qwen}
    assert qwen in named[SIZES] and qwen not in named[ANY] and qwen not in named[SAME_TYPE]
    assert len(named[ANY]) == len(ids) * (len(ids) - 1) // 2 - 1  # every other pair: different families


def test_every_registry_variant_is_a_setting_of_the_scale_table():
    from llkl_db.analysis.settings import variant_pairs
    from llkl_db.scale import REFERENCE_MEDIANS
    from llkl_db.variants import VARIANTS

    for v in VARIANTS.values():
        expected = f"{v.dtype} cast" if v.kind == "cast" else f"{v.bits}-bit quantization"
        assert variant_setting(v.name) == expected
        if v.kind != "cast" and v.bits in (8, 4):
            assert expected in REFERENCE_MEDIANS
    names = [None, *VARIANTS]
    entries = pl.DataFrame(
        {"model_id": ["m"] * len(names), "revision": ["main"] * len(names), "layer": [None] * len(names)},
        schema={"model_id": pl.String, "revision": pl.String, "layer": pl.Int64},
    ).with_columns(pl.Series("variant", names, dtype=pl.String))
    pairs = variant_pairs(entries)
    assert list(pairs) == [
        "8-bit quantization",
        "5-bit quantization",
        "4-bit quantization",
        "bfloat16 cast",
        "float16 cast",
    ]
    assert pairs["8-bit quantization"].size == 2 and set(pairs["8-bit quantization"].a) == {0}


def test_layers_profile(known):
    ds = llkl_db.open(known)
    p = analysis.layer_profile(ds, "org/fam-1b")
    assert p.table["layer"].to_list() == [0, 1, 2]
    assert p.table["entry_id"].to_list() == ["org/fam-1b@main:L0", "org/fam-1b@main:L1", "org/fam-1b@main"]
    kl = ds.kl("org/fam-1b@main:L0", "org/fam-1b@main:L1").kl_bpb
    assert p.table["kl_next_bpb"][0] == pytest.approx(kl, rel=1e-9)


def test_map_png_and_html(known, tmp_path):
    from matplotlib import image

    runner = CliRunner()
    png, page = tmp_path / "map.png", tmp_path / "map.html"
    result = runner.invoke(
        app, ["map", "--dataset", str(known), "--out", str(png), "--out", str(page), "--color", "kind"]
    )
    assert result.exit_code == 0, result.output
    pixels = image.imread(png)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 400
    rgb = pixels[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.05 and (rgb.min(axis=1) < 0.9).mean() > 0.01  # not blank: ink on the page
    assert len(np.unique((rgb * 255).astype(int), axis=0)) > 20
    text = page.read_text()
    k = len(llkl_db.open(known))
    data = explorer_data_of(text)
    assert data["ids"] == llkl_db.open(known).entries["entry_id"].to_list() and len(data["xy"]) == 2 * k
    assert "<script src" not in text and "https://" not in text and "<link" not in text  # self-contained
    assert len(data["runs"]) == 2  # the two seeds' runs
    assert data["nb_offsets"][-1] == 10 * k  # ten neighbours each by default
    tsne = runner.invoke(
        app, ["map", "--dataset", str(known), "--method", "tsne", "--out", str(tmp_path / "t.html"), "--json"]
    )
    assert tsne.exit_code == 0, tsne.output
    assert len(json.loads(tsne.stdout)["points"]) == k


def explorer_data_of(page: str) -> dict:
    """The data a map page embeds (the JSON literal assigned to EXPLORER_DATA)."""
    start = page.index("const EXPLORER_DATA = ") + len("const EXPLORER_DATA = ")
    return json.loads(page[start : page.index(";\n", start)])


def test_analysis_cli_commands(known, tmp_path):
    runner = CliRunner()
    out = runner.invoke(
        app, ["trajectory", "org/run", "--dataset", str(known), "--json", "--plot", str(tmp_path / "t.png")]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert len(data["runs"]) == 2 and data["seeds"][0]["step"] == 0 and (tmp_path / "t.png").stat().st_size > 10_000
    table = runner.invoke(app, ["trajectory", "org/run", "--seed", "0", "--dataset", str(known), "--preprocess"])
    assert table.exit_code == 0 and "median c" in table.output and "dropped 12" in table.output
    layers = runner.invoke(app, ["layers", "org/fam-1b", "--dataset", str(known), "--plot", str(tmp_path / "l.png")])
    assert layers.exit_code == 0 and "(output)" in layers.output, layers.output
    scale = runner.invoke(app, ["scale", "--dataset", str(known), "--json"])
    assert scale.exit_code == 0
    assert {s["setting"] for s in json.loads(scale.stdout)["settings"]} >= {"random seeds", "adjacent layers"}
    where = runner.invoke(app, ["scale", "--dataset", str(known), "--where", "model_id LIKE 'org/run%'"])
    assert where.exit_code == 0 and "random seeds" in where.output and "adjacent" not in where.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["trajectory", "org/fam-1b"], "has no checkpoints"),
        (["trajectory", "org/run", "--seed", "5"], "no run with seed 5"),
        (["trajectory", "org/run", "--weights"], "no weight distances"),
        (["trajectory", "org/run", "--window", "0"], "--window"),
        (["trajectory", "org/run", "--where", "step < 1"], "a single checkpoint"),
        (["trajectory", "nobody/none"], "unknown model"),
        (["layers", "org/fam-7b"], "no logit-lens layer entries"),
        (["layers", "other/x-1b"], "no logit-lens layer entries"),
        (["map", "--color", "colour"], "--color 'colour'"),
        (["map", "--out", "map.jpg"], "use a .png or .html"),
        (["map", "--method", "umap", "--out", "m.html"], "--method 'umap'"),
        (["map", "--where", "model_id = 'other/x-1b'", "--out", "m.html"], "at least two entries"),
        (["scale", "--where", "model_id = 'other/x-1b'"], "at least two entries"),
    ],
)
def test_bad_input_is_one_line(known, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*args, "--dataset", str(known)])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert result.output.startswith("Error:")


def test_unknown_model_is_exit_code_2(known):
    with pytest.raises(UnknownEntryError):
        analysis.trajectory(llkl_db.open(known), "nobody/none")
    assert CliRunner().invoke(app, ["trajectory", "org/rn", "--dataset", str(known)]).exit_code == 2


def test_query_side_does_not_import_torch_or_matplotlib(known):
    import subprocess
    import sys

    code = (
        "import sys, llkl_db; from llkl_db import analysis; ds = llkl_db.open(sys.argv[1]);"
        "analysis.trajectory(ds, 'org/run'); analysis.scale_table(ds); analysis.entry_map(ds);"
        "analysis.layer_profile(ds, 'org/fam-1b');"
        "bad = [m for m in ('torch', 'matplotlib', 'transformers') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(known)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
