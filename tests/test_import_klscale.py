"""Import of the kl-scale release (arXiv 2505.15353) from fabricated files in its formats, the
scale by the release's own definitions against an independent computation, exclusions, text-set
recognition, and every malformed input refused in one line with the target left unchanged."""

from __future__ import annotations

import json
import math
import os
import pickle
from itertools import combinations

import numpy as np
import polars as pl
import pytest
from klscale_files import FINE_TUNES, LAYER_MODEL, write_klscale
from modelmap_files import write_modelmap
from typer.testing import CliRunner

import llkl_db
from llkl_db.analysis import scale_table, trajectory
from llkl_db.cli import app
from llkl_db.errors import LlklError
from llkl_db.importers import import_klscale, import_modelmap
from llkl_db.validation import validate

runner = CliRunner()
PYTHIA = "EleutherAI/pythia-"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("klscale")
    made = write_klscale(root / "data")
    out = root / "dataset"
    summary = import_klscale(root / "data", out, dataset_version="1.0.0")
    return made, out, summary


def test_import_writes_every_part_of_the_release(imported):
    made, out, summary = imported
    assert validate(out).ok
    ds = llkl_db.open(out)
    e = ds.entries
    # 7 models (one None); checkpoints 153 (410m, one None) + 3 + 4 + 4 (seeds 1-3) + 6 (1b);
    # 5 layers (a second model None); 4 + 4 variants (one None each)
    assert summary.entries == {"models": 7, "checkpoints": 153 + 3 + 4 + 4 + 6, "layers": 5, "variants": 8}
    assert summary.skipped_none == {
        "oyama2025_logp.pkl": 1,
        "pretraining_logp.pkl": 2,
        "layer_logp.pkl": 1,
        "8bit_quantization_logp.pkl": 1,
        "4bit_quantization_logp.pkl": 1,
    }
    assert summary.text_set == "kl-scale" and len(ds) == summary.n_entries
    row = e.filter(pl.col("entry_id") == "org-1/model-001@unknown").row(0, named=True)
    assert row["base_model"] == "org-0/model-000" and row["model_type"] == "llama-2"
    assert row["bos_policy"] == "bos" and row["dtype"] == "float16" and row["revision"] == "unknown"
    models = e.filter(pl.col("step").is_null() & pl.col("layer").is_null() & pl.col("variant").is_null())
    bases = dict(zip(models["model_id"], models["base_model"], strict=True))
    assert bases["org-3/model-003"] == "org-2/model-002"  # a one-element list
    assert bases["org-5/model-005"] is None and bases["org-0/model-007"] is None  # a merge; a parent elsewhere
    assert any("1 merges" in n for n in summary.notes) and any("outside model_list.json" in n for n in summary.notes)
    assert e.filter(pl.col("model_id") == "org-4/model-004")["bos_policy"][0] == "skip-first"  # qwen2
    ck = e.filter(pl.col("entry_id") == f"{PYTHIA}410m-seed3@step143000").row(0, named=True)
    assert ck["step"] == 143000 and ck["seed"] == 3 and ck["revision"] == "step143000"
    assert "anomalous seed" in ck["excluded_reason"] and ck["bos_policy"] == "skip-first"
    assert e.filter(pl.col("entry_id") == f"{PYTHIA}1b@step116000")["excluded_reason"][0]
    assert e.filter(pl.col("entry_id") == f"{PYTHIA}1b@step117000")["excluded_reason"][0] is None
    assert summary.n_excluded == 4 + 1
    layer = e.filter(pl.col("entry_id") == f"{LAYER_MODEL}@unknown:L4").row(0, named=True)
    assert layer["layer"] == 4 and "logit lens" in layer["contributor"]
    variant = e.filter(pl.col("entry_id") == "org-2/model-002@unknown:bnb-4bit").row(0, named=True)
    assert variant["variant"] == "bnb-4bit" and variant["model_id"] == "org-2/model-002"
    stored = ds.folder.read_loglik(ds.folder.entries().filter(pl.col("entry_id") == f"{PYTHIA}410m@step5000"))[0]
    np.testing.assert_array_equal(stored, made["pretraining"]["410m"][5000].astype(np.float32))
    weights = ds.folder.read_table("weight_distances").sort("model_id", "step_a", "step_b")
    got = {(m, a, b): d for m, a, b, d in weights.select("model_id", "step_a", "step_b", "sq_distance").iter_rows()}
    assert got == {
        (f"{PYTHIA}1b", 115000, 116000): 0.0,
        (f"{PYTHIA}1b", 115000, 117000): 6.0,
        (f"{PYTHIA}410m", 0, 1): 0.0,
        (f"{PYTHIA}410m", 0, 2): 1.5,
        (f"{PYTHIA}410m", 1000, 2000): 12.5,
        (f"{PYTHIA}410m", 1000, 3000): 20.0,
    }
    assert summary.n_weight_distances == 6 and set(weights["revision_a"]) >= {"step0", "step115000"}


def _kl(a, b, mean_bytes: float) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.var(a - b) / (2 * mean_bytes * math.log(2)))


def _preprocess(runs: dict, excluded: set, n_bytes: np.ndarray):
    """The release's preprocessing as method.md section 3 states it: clip at the 2% quantile of
    the runs' values, drop the 3% of texts with the largest jump between consecutive checkpoints
    from step 2,000 on, B over the texts kept. ``runs``: run -> step -> float32 vector."""
    values = np.concatenate([v for run, steps in runs.items() for s, v in steps.items() if (run, s) not in excluded])
    t = np.quantile(values.astype(np.float64), 0.02)
    score = np.full(n_bytes.size, -np.inf)
    for run, steps in runs.items():
        later = sorted(s for s in steps if s >= 2000)
        for s, u in zip(later, later[1:], strict=False):
            if (run, s) in excluded or (run, u) in excluded:
                continue
            score = np.maximum(score, np.abs(np.maximum(steps[u], t) - np.maximum(steps[s], t)))
    keep = np.ones(n_bytes.size, dtype=bool)
    keep[np.argsort(-score, kind="stable")[: round(0.03 * n_bytes.size)]] = False
    clip = {
        run: {s: np.maximum(v.astype(np.float64), t)[keep] for s, v in steps.items()} for run, steps in runs.items()
    }
    return clip, float(n_bytes[keep].mean())


def test_scale_follows_the_release_definitions(imported):
    """Each setting's median from the fabricated arrays, by the definitions of the release's
    calc_kl.py as method.md section 3 states them, computed here without the library's code."""
    made, out, _ = imported
    ds = llkl_db.open(out)
    nb = made["n_bytes"]
    f32 = {
        run: {s: v.astype(np.float32) for s, v in steps.items() if v is not None}
        for run, steps in made["pretraining"].items()
    }
    main, b_main = _preprocess({r: f32[r] for r in ("410m", "1b")}, {("1b", 116000)}, nb)
    early, late = [], []
    for run, steps in main.items():
        kept = sorted(s for s in steps if (run, s) != ("1b", 116000))
        pairs = [(s, u) for s, u in zip(kept, kept[1:], strict=False) if u - s == 1000 and u > 2000]
        early += [_kl(steps[s], steps[u], b_main) for s, u in pairs[:50]]
        late += [_kl(steps[s], steps[u], b_main) for s, u in pairs[-50:]]
    sizes = [_kl(main["410m"][143000], main["1b"][143000], b_main)]
    seeds_pre, b_seed = _preprocess({r: f32[r] for r in ("410m-seed1", "410m-seed2")}, set(), nb)
    seeds = [_kl(seeds_pre["410m-seed1"][143000], seeds_pre["410m-seed2"][143000], b_seed)]
    b = float(nb.mean())
    models = {k: v.astype(np.float32) for k, v in made["models"].items() if v is not None}
    tune = [_kl(models[c], models[p], b) for c, p in FINE_TUNES]
    same = [
        _kl(models[x], models[y], b)
        for x, y in (("org-0/model-000", "org-1/model-001"), ("org-2/model-002", "org-3/model-003"))
    ]
    every = [_kl(models[x], models[y], b) for x, y in combinations(sorted({m for pair in FINE_TUNES for m in pair}), 2)]
    q8 = [_kl(models[m], v.astype(np.float32), b) for m, v in made["quantized"][8].items() if v is not None]
    q4 = [_kl(models[m], v.astype(np.float32), b) for m, v in made["quantized"][4].items() if v is not None]
    lay = {k: v.astype(np.float32) for k, v in made["layers"][LAYER_MODEL].items()}
    layers = [_kl(lay[i], lay[i + 1], b) for i in range(4)]
    expected = {
        "pretraining, first 50 intervals": early,
        "pretraining, last 50 intervals": late,
        "random seeds": seeds,
        "Pythia sizes, final step": sizes,
        "8-bit quantization": q8,
        "4-bit quantization": q4,
        "fine-tuned child vs parent": tune,
        "same model type": same,
        "any two models": every,
        "adjacent layers": layers,
    }
    assert len(early) == 50 + 2 and len(late) == 50 + 2  # 410m: 140 intervals; 1b: two left after the exclusion
    result = scale_table(ds, max_pairs=10**6)
    assert result.definitions == "kl-scale" and result.n_excluded == 5
    table = {r["setting"]: r for r in result.table.to_dicts()}
    assert list(table) == list(expected)
    for name, values in expected.items():
        assert table[name]["n_pairs"] == len(values), name
        assert table[name]["median_bpb"] == pytest.approx(float(np.median(values)), rel=1e-4), name
    # the excluded entries come back on request, and the project's own definitions stay available
    with_excluded = {r["setting"]: r for r in scale_table(ds, max_pairs=10**6, include_excluded=True).table.to_dicts()}
    assert with_excluded["random seeds"]["n_pairs"] == 3
    assert with_excluded["pretraining, first 50 intervals"]["n_pairs"] == 50 + 4
    assert scale_table(ds, definitions="llkl").definitions == "llkl"


def test_weight_distances_in_dict_forms_too(tmp_path):
    from llkl_db.importers.klscale import read_weight_distances

    path = tmp_path / "weight_distance.pkl"
    path.write_bytes(pickle.dumps({"410m": {(1000, 2000): 2.5}, "1b": {"step3000": {"step1000": 4.0}}}))
    rows = sorted((r["model_id"], r["step_a"], r["step_b"], r["sq_distance"]) for r in read_weight_distances(path))
    assert rows == [(f"{PYTHIA}1b", 1000, 3000, 4.0), (f"{PYTHIA}410m", 1000, 2000, 2.5)]
    path.write_bytes(pickle.dumps({"410m": np.zeros((3, 3))}))
    with pytest.raises(LlklError, match="154 x 154"):
        read_weight_distances(path)


def test_trajectory_leaves_excluded_runs_out_unless_asked(imported):
    _, out, _ = imported
    ds = llkl_db.open(out)
    runs = {r.model_id for r in trajectory(ds, f"{PYTHIA}410m", window=2).runs}
    assert runs == {f"{PYTHIA}410m", f"{PYTHIA}410m-seed1", f"{PYTHIA}410m-seed2"}
    result = trajectory(ds, f"{PYTHIA}410m", window=2, include_excluded=True)
    assert {r.model_id for r in result.runs} == runs | {f"{PYTHIA}410m-seed3"}
    one_b = trajectory(ds, f"{PYTHIA}1b", window=2)
    assert 116000 not in one_b.runs[0].checkpoints["step"].to_list()
    assert any("excluded_reason" in n for n in one_b.notes)


def test_cli_scale_and_trajectory_flags(imported):
    _, out, _ = imported
    result = runner.invoke(app, ["scale", "--dataset", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["definitions"] == "kl-scale" and data["n_excluded"] == 5
    result = runner.invoke(app, ["scale", "--dataset", str(out), "--include-excluded", "--definitions", "kl-scale"])
    assert result.exit_code == 0 and "kl-scale definitions" in result.output
    result = runner.invoke(app, ["scale", "--dataset", str(out), "--definitions", "nope"])
    assert result.exit_code != 0 and "definitions" in result.output
    result = runner.invoke(
        app, ["trajectory", f"{PYTHIA}410m", "--dataset", str(out), "--window", "2", "--include-excluded", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["runs"]) == 4


def test_same_texts_as_the_2025_release_share_pile_10k_and_merge(tmp_path):
    made25 = write_modelmap(tmp_path / "modelmap", k=6, n=40)
    out = tmp_path / "ds"
    import_modelmap(tmp_path / "modelmap", out)
    write_klscale(tmp_path / "data", texts=made25["texts"])
    summary = import_klscale(tmp_path / "data", out)
    assert summary.text_set == "pile-10k"
    assert any("same texts in the same order as pile-10k" in n for n in summary.notes)
    assert any("already in" in n for n in summary.notes)  # the 2025 models, the same ids
    ds = llkl_db.open(out)
    assert ds.metadata.text_set == "pile-10k"
    assert ds.entries.filter(pl.col("step").is_not_null()).height == 170
    # an explicit reference works too, without a target dataset
    other = import_klscale(tmp_path / "data", tmp_path / "ds2", texts=tmp_path / "modelmap" / "texts-10k-pile.jsonl")
    assert other.text_set == "pile-10k"


def test_other_texts_are_their_own_text_set_and_never_mix(tmp_path):
    write_modelmap(tmp_path / "modelmap", k=4, n=40)
    out = tmp_path / "ds"
    import_modelmap(tmp_path / "modelmap", out)
    before = _snapshot(out)
    write_klscale(tmp_path / "data", n=40, seed=7)
    with pytest.raises(LlklError, match="text set"):
        import_klscale(tmp_path / "data", out)
    assert _snapshot(out) == before
    summary = import_klscale(
        tmp_path / "data", tmp_path / "alone", texts=tmp_path / "modelmap" / "texts-10k-pile.jsonl"
    )
    assert summary.text_set == "kl-scale" and any("not the pile-10k" in n for n in summary.notes)


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class Evil:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def _missing(root, name):
    next(root.rglob(name)).unlink()
    return name


def _truncated(root, name):
    path = next(root.rglob(name))
    path.write_bytes(path.read_bytes()[:100])
    return name


def _wrong_length(root, name):
    path = next(root.rglob(name))
    data = pickle.loads(path.read_bytes())
    data["410m"][3000] = data["410m"][3000][:-1]
    path.write_bytes(pickle.dumps(data))
    return name


def _bad_sibling(root, name):
    path = next(root.rglob(name))
    path.write_text(json.dumps({"org-1/model-001": 7}))
    return name


def _evil(root, name):
    path = next(root.rglob(name))
    path.write_bytes(pickle.dumps({"org-0/model-000": Evil(root / "PWNED")}))
    return name


def _bad_weights(root, name):
    next(root.rglob(name)).write_bytes(pickle.dumps({"410m": [1.0, 2.0]}))
    return name


def _bad_step(root, name):
    path = next(root.rglob(name))
    path.write_bytes(pickle.dumps({"410m": {"latest": np.zeros(40)}}))
    return name


def _bad_run(root, name):
    next(root.rglob(name)).write_bytes(pickle.dumps({"gpt2": {1000: np.zeros(40)}}))
    return name


@pytest.mark.parametrize(
    ("damage", "name", "message"),
    [
        (_missing, "texts.json", "texts.json not found"),
        (_missing, "model_list.json", "model_list.json not found"),
        (_missing, "oyama2025_logp.pkl", "oyama2025_logp.pkl not found"),
        (_truncated, "pretraining_logp.pkl", "runs past the end|truncated|not enough data"),
        (_truncated, "oyama2025_logp.pkl", "runs past the end|truncated|not enough data"),
        (_wrong_length, "pretraining_logp.pkl", r"410m step 3000: has shape \(39,\)"),
        (_bad_sibling, "sibling_info.json", "the parent of org-1/model-001 must be"),
        (_evil, "8bit_quantization_logp.pkl", "refused global .*system"),
        (_bad_weights, "weight_distance.pkl", "expected a dict"),
        (_bad_step, "pretraining_logp.pkl", "not a training step"),
        (_bad_run, "pretraining_logp.pkl", "not a Pythia run"),
    ],
)
def test_malformed_release_is_refused_in_one_line_and_the_target_is_unchanged(tmp_path, damage, name, message):
    write_klscale(tmp_path / "good")
    out = tmp_path / "ds"
    import_klscale(tmp_path / "good", out)
    before = _snapshot(out)
    root = tmp_path / "bad"
    write_klscale(root)
    damage(root, name)
    with pytest.raises(LlklError, match=message) as err:
        import_klscale(root, out, overwrite=False)
    text = str(err.value)
    assert "\n" not in text and name in text
    assert _snapshot(out) == before
    assert not (root / "PWNED").exists()
    result = runner.invoke(app, ["import", "kl-scale", str(root), "--out", str(tmp_path / "fresh")])
    assert result.exit_code == 1 and "Traceback" not in result.output and name in result.output
    assert not (tmp_path / "fresh").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_cli_import(tmp_path):
    write_klscale(tmp_path / "data")
    result = runner.invoke(app, ["import", "kl-scale", str(tmp_path / "data"), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "Imported 190 entries" in output and "6 weight distances" in output
    assert "None" in output and "5 flagged with excluded_reason" in output
