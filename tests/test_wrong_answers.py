"""Answers that looked right and were wrong: name resolution, validation bounds per kind of
entry, the bias the SE does not cover, and imports that silently collapsed entries."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import synthetic_loglik, write_dataset

import llkl_db
from llkl_db.io.vectors import entry_id

# --- 1. resolution ------------------------------------------------------------------------


def _rows(model: str, revision: str, layers, variant=None, output=True) -> list[dict]:
    rows = [
        {
            "entry_id": entry_id(model, revision, layer, variant),
            "model_id": model,
            "revision": revision,
            "layer": layer,
            "n_layers": 30,
            "variant": variant,
        }
        for layer in layers
    ]
    if output:
        rows.append(
            {
                "entry_id": entry_id(model, revision, None, variant),
                "model_id": model,
                "revision": revision,
                "variant": variant,
                "n_layers": 30,
            }
        )
    return rows


def test_local_bfloat16_build_with_all_layers_resolves_to_its_output(tmp_path):
    """`--variant bfloat16 --layers all`: entries :L0:bfloat16 .. :L29:bfloat16 and the output."""
    rows = _rows("my-model", "local", range(30), "bfloat16")
    root = write_dataset(tmp_path / "ds", synthetic_loglik(len(rows), 64), rows)
    resolved = llkl_db.open(root).resolve("my-model")
    assert resolved.entry_id == "my-model@local:bfloat16"
    assert "output layer" in resolved.note and "bfloat16" in resolved.note


def test_model_without_output_entry_resolves_to_its_deepest_layer_and_says_so(tmp_path):
    rows = _rows("org/lens-only", "main", range(12), output=False)
    rows += [{"entry_id": "org/other@main", "model_id": "org/other", "revision": "main"}]
    root = write_dataset(tmp_path / "ds", synthetic_loglik(len(rows), 64), rows)
    resolved = llkl_db.open(root).resolve("org/lens-only")
    assert resolved.entry_id == "org/lens-only@main:L11"
    assert "output layer" not in resolved.note
    assert "no output entry" in resolved.note and "layer 11" in resolved.note


def test_model_id_with_at_sign(tmp_path):
    rows = [
        {"entry_id": "org/model@v2@main", "model_id": "org/model@v2", "revision": "main"},
        {"entry_id": "org/model@v2@step10", "model_id": "org/model@v2", "revision": "step10", "step": 10},
        {"entry_id": "org/model@main", "model_id": "org/model", "revision": "main"},
    ]
    root = write_dataset(tmp_path / "ds", synthetic_loglik(len(rows), 64), rows)
    ds = llkl_db.open(root)
    assert ds.resolve("org/model@v2").entry_id == "org/model@v2@main"
    assert ds.resolve("org/model@v2@step10").entry_id == "org/model@v2@step10"
    assert ds.resolve("org/model").entry_id == "org/model@main"
    assert ds.kl("org/model@v2", "org/model").b == "org/model@main"


# --- 2. validation bounds per kind of entry -----------------------------------------------


def test_embedded_dataset_validates_with_zero_problems():
    from pathlib import Path

    from llkl_db.validation.validate import validate

    root = Path(llkl_db.__file__).parent / "data" / "embedded"
    report = validate(root)
    assert report.problems == []
    assert report.ok and len(report.entries) == len(llkl_db.open(root))


def test_layer_bounds_are_wider_but_output_bounds_unchanged(tmp_path):
    """A lens layer far worse than uniform is plausible; the same vector as an output is not;
    a positive log-likelihood is wrong for both."""
    from llkl_db.validation.validate import validate

    n = 64
    bad = synthetic_loglik(3, n) * 40.0  # about -12,000 nats for 20..200 bytes: hundreds of bits/byte
    bad[2, 5] = 1.0  # positive log-likelihood in the last row
    rows = [
        {
            "entry_id": "org/m@main:L0",
            "model_id": "org/m",
            "revision": "main",
            "layer": 0,
            "n_layers": 2,
            "contributor": "test",
        },
        {"entry_id": "org/m@main", "model_id": "org/m", "revision": "main", "n_layers": 2, "contributor": "test"},
        {
            "entry_id": "org/m@main:L1",
            "model_id": "org/m",
            "revision": "main",
            "layer": 1,
            "n_layers": 2,
            "contributor": "test",
        },
    ]
    root = write_dataset(tmp_path / "ds", bad, rows)
    report = validate(root)
    by_entry = {}
    for p in report.problems:
        by_entry.setdefault(p.entry, []).append(p.reason)
    assert "org/m@main:L0" not in by_entry, by_entry
    assert any("model output" in r for r in by_entry["org/m@main"])
    assert any("positive log-likelihood" in r for r in by_entry["org/m@main:L1"])


# --- 4. imports -----------------------------------------------------------------------------


def _rewrite_model_data(folder, change, drop_raw=True):
    import pickle

    path = folder / "model-data-1018.pkl"
    data = pickle.loads(path.read_bytes())
    change(data)
    path.write_bytes(pickle.dumps(data, protocol=4))
    if drop_raw:
        (folder / "raw_log-likelihood_1018.pkl").unlink()
    return path


def _cli_import(folder, out):
    from typer.testing import CliRunner

    from llkl_db.cli import app

    return CliRunner().invoke(app, ["import", "modelmap", str(folder), "--out", str(out)])


def _assert_one_error_line(result, *needles):
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_duplicated_model_name_is_refused_not_collapsed(tmp_path):
    from modelmap_files import write_modelmap

    write_modelmap(tmp_path / "files", k=4)
    path = _rewrite_model_data(
        tmp_path / "files", lambda d: d.__setitem__(3, {**d[3], "model_name": d[1]["model_name"]})
    )
    result = _cli_import(tmp_path / "files", tmp_path / "ds")
    _assert_one_error_line(result, str(path), "org-1/model-001", "twice")
    assert not (tmp_path / "ds").exists()


# An infinite float reaches the importer, which names the model; an integer beyond 64 bits is
# refused earlier, by the restricted unpickler, which names the byte.
@pytest.mark.parametrize(
    "size,needles",
    [(1e400, ("org-2/model-002", "model_size")), (10**30, ("beyond 64 bits",)), (10**400, ("beyond 64 bits",))],
    ids=["inf", "1e30", "int-1e400"],
)
def test_overflowing_model_size_is_one_line_error(tmp_path, size, needles):
    from modelmap_files import write_modelmap

    write_modelmap(tmp_path / "files", k=4)
    _rewrite_model_data(tmp_path / "files", lambda d: d[2].__setitem__("model_size", size), drop_raw=False)
    result = _cli_import(tmp_path / "files", tmp_path / "ds")
    _assert_one_error_line(result, "model-data-1018.pkl", *needles)
    assert not (tmp_path / "ds").exists()
    assert not list(tmp_path.glob(".ds.import-*"))


def test_an_overflowing_score_is_recorded_as_missing(tmp_path):
    # NaN marks a missing score in the 2025 files; an infinite one is no score either (null),
    # never a value that queries would use. Integers beyond 64 bits are refused by the unpickler.
    import polars as pl
    from modelmap_files import write_modelmap

    write_modelmap(tmp_path / "files", k=4)
    _rewrite_model_data(tmp_path / "files", lambda d: d[0].__setitem__("downloads", float("inf")), drop_raw=False)
    result = _cli_import(tmp_path / "files", tmp_path / "ds")
    assert result.exit_code == 0, result.output
    scores = pl.read_parquet(tmp_path / "ds" / "tables" / "model_scores.parquet")
    row = scores.filter((pl.col("model_id") == "org-0/model-000") & (pl.col("score") == "downloads"))
    assert row.height == 1 and row["value"][0] is None


# --- 3. the bias the SE does not cover ----------------------------------------------------


@pytest.fixture(scope="module")
def markov_dataset(tmp_path_factory):
    """Five Markov chains (exact KL known) scored on N = 30,000 texts, as a real dataset folder."""
    from test_math import LENGTHS, _chain, _loglik, _perturb, _sample_counts

    rng = np.random.default_rng(20250516)
    pi0, p = _chain(rng)
    models = [p] + [_perturb(p, 0.04, rng) for _ in range(4)]
    n = 30_000
    first, counts = _sample_counts(pi0, p, n, np.random.default_rng(1))
    loglik = np.stack([_loglik(first, counts, pi0, q) for q in models]).astype(np.float32)
    root = write_dataset(
        tmp_path_factory.mktemp("markov") / "ds",
        loglik,
        mean_text_bytes=float(LENGTHS.mean()),
        texts=[f"{i}" for i in range(n)],
    )
    return root, pi0, models


def test_bias_margin_covers_exact_kl_where_two_se_do_not(markov_dataset):
    from test_math import _exact_kl

    root, pi0, models = markov_dataset
    ds = llkl_db.open(root)
    ids = ds.entries["entry_id"].to_list()
    outside_plain = 0
    for i in range(len(models)):
        for j in range(i + 1, len(models)):
            exact_nats = 0.5 * (_exact_kl(pi0, models[i], models[j]) + _exact_kl(pi0, models[j], models[i]))
            plain = ds.kl(ids[i], ids[j])
            assert plain.bias_bpb is None and plain.interval_nats() == pytest.approx(
                (plain.kl_nats - 2 * plain.se_nats, plain.kl_nats + 2 * plain.se_nats)
            )
            lo, hi = plain.interval_nats()
            outside_plain += not (lo <= exact_nats <= hi)
            wide = ds.kl(ids[i], ids[j], bias_margin=True)
            lo, hi = wide.interval_nats()
            assert lo <= exact_nats <= hi, (i, j, exact_nats, wide)
            assert wide.bias_nats > 0 and wide.bias_bpb == pytest.approx(
                wide.bias_nats / (ds.metadata.mean_text_bytes * np.log(2))
            )
    assert outside_plain >= 5  # the test has power: +-2 SE misses the exact value on most pairs
    # nearest reports the same margin
    table = ds.nearest(ids[1], k=4, bias_margin=True).table
    pair = ds.kl(ids[1], table["entry_id"][0], bias_margin=True)
    assert table["bias_bpb"][0] == pytest.approx(pair.bias_bpb)


def test_se_note_in_json_and_footnote_in_cli(markov_dataset):
    import json

    from typer.testing import CliRunner

    from llkl_db.cli import app

    root = str(markov_dataset[0])
    runner = CliRunner()
    for args in (["kl", "org/model-000", "org/model-001"], ["nearest", "org/model-000", "-k", "2"]):
        out = runner.invoke(app, [*args, "--dataset", root, "--json"])
        assert out.exit_code == 0, out.output
        assert "sampling noise only" in json.loads(out.stdout)["se_note"]
        text = runner.invoke(app, [*args, "--dataset", root])
        assert "sampling noise only" in text.stdout and "--with-bias" in text.stdout
        wide = runner.invoke(app, [*args, "--dataset", root, "--with-bias"])
        assert wide.exit_code == 0 and "bias" in wide.stdout
