"""The query commands (nearest, kl, models, info) through Typer's CliRunner, on real folders."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import default_rows, synthetic_loglik, write_dataset
from typer.testing import CliRunner

from llkl_db.cli import app
from llkl_db.io.vectors import entry_id
from llkl_db.schema import PARQUET_VERSION_KEY

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def _rows() -> list[dict]:
    rows = default_rows(8)
    for revision, step in (("step1000", 1000), ("main", 143000)):
        rows.append(
            {
                "entry_id": entry_id("EleutherAI/pythia-70m", revision),
                "model_id": "EleutherAI/pythia-70m",
                "revision": revision,
                "step": step,
                "model_type": "gpt_neox",
            }
        )
    rows.append(
        {
            "entry_id": entry_id("EleutherAI/pythia-70m", "main", layer=2),
            "model_id": "EleutherAI/pythia-70m",
            "revision": "main",
            "layer": 2,
            "model_type": "gpt_neox",
        }
    )
    return rows


@pytest.fixture
def folder(tmp_path):
    rows = _rows()
    return write_dataset(tmp_path / "ds", synthetic_loglik(len(rows), 48, seed=9), rows, files=2)


def assert_clean_error(result, code: int, *needles: str) -> str:
    """Non-zero exit, exactly one 'Error: ...' line on stderr, no traceback anywhere."""
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# --- good input ----------------------------------------------------------------------------------


def test_nearest_table(folder):
    result = run("nearest", "org/model-001", "-k", "3", "--dataset", str(folder))
    assert result.exit_code == 0, result.stderr
    assert "Nearest to org/model-001@main" in result.stdout
    assert "±" in result.stdout
    assert "Scale (arXiv 2505.15353" in result.stdout
    assert result.stdout.count("@main") >= 3


def test_nearest_json_matches_library(folder):
    import llkl_db

    result = run("nearest", "org/model-001", "-k", "4", "--dataset", str(folder), "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["query"] == "org/model-001@main"
    assert payload["note"] is None
    assert len(payload["neighbours"]) == 4
    expected = llkl_db.open(folder).nearest("org/model-001", k=4).table
    assert [n["entry_id"] for n in payload["neighbours"]] == expected["entry_id"].to_list()
    np.testing.assert_allclose([n["kl_bpb"] for n in payload["neighbours"]], expected["kl_bpb"].to_numpy())
    first = payload["neighbours"][0]
    assert set(first) >= {"rank", "entry_id", "kl_bpb", "se_bpb", "kl_nats", "se_nats", "level"}
    assert first["rank"] == 1


def test_nearest_where_and_resolution_note(folder):
    result = run(
        "nearest", "EleutherAI/pythia-70m", "-k", "10", "-d", str(folder), "--where", "model_type = 'llama'", "--json"
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["query"] == "EleutherAI/pythia-70m@main"
    assert "3 entries" in payload["note"]
    assert "3 entries; using EleutherAI/pythia-70m@main" in result.stderr  # the note goes to stderr too
    assert [n["entry_id"] for n in payload["neighbours"]] == sorted(
        [n["entry_id"] for n in payload["neighbours"]], key=[n["entry_id"] for n in payload["neighbours"]].index
    )
    assert {n["entry_id"] for n in payload["neighbours"]} == {
        "org/model-000@main",
        "org/model-003@main",
        "org/model-006@main",
    }


def test_dataset_from_environment(folder, monkeypatch):
    monkeypatch.setenv("LLKL_DB_DATASET", str(folder))
    result = run("info", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["n_entries"] == 11


def test_kl_text_and_json(folder):
    result = run("kl", "org/model-001", "org/model-002", "-d", str(folder))
    assert result.exit_code == 0, result.stderr
    assert "KL(org/model-001@main, org/model-002@main)" in result.stdout
    assert "bits/byte" in result.stdout and "nats/text" in result.stdout and "±" in result.stdout
    result = run("kl", "org/model-001", "EleutherAI/pythia-70m", "-d", str(folder), "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["b"] == "EleutherAI/pythia-70m@main"
    assert payload["kl_bpb"] > 0 and payload["se_bpb"] > 0 and payload["n_texts"] == 48
    assert "using EleutherAI/pythia-70m@main" in result.stderr


def test_models_search_where_json(folder):
    result = run("models", "-d", str(folder))
    assert result.exit_code == 0, result.stderr
    assert "9 model(s)" in result.stdout
    result = run("models", "-d", str(folder), "--search", "PYTHIA", "--json")
    payload = json.loads(result.stdout)
    assert [m["model_id"] for m in payload] == ["EleutherAI/pythia-70m"]
    assert payload[0]["entries"] == 3 and payload[0]["layers"] == 1
    result = run("models", "-d", str(folder), "--where", "model_type = 'gpt2'", "--json")
    assert [m["model_id"] for m in json.loads(result.stdout)] == ["org/model-001", "org/model-004", "org/model-007"]


def test_info_text_and_json(folder):
    result = run("info", "-d", str(folder))
    assert result.exit_code == 0, result.stderr
    assert "dataset_version" in result.stdout and "1.0.0" in result.stdout
    payload = json.loads(run("info", "-d", str(folder), "--json").stdout)
    assert payload["n_texts"] == 48 and payload["n_entries"] == 11 and payload["n_models"] == 9
    assert payload["text_set"] == "test-texts" and payload["schema_version"] == 1


# --- bad input -------------------------------------------------------------------------------------


def test_unknown_model_exits_2_with_closest(folder):
    result = run("nearest", "org/model-0011", "-d", str(folder))
    assert_clean_error(result, 2, "unknown model or entry 'org/model-0011'", "closest", "org/model-001")
    result = run("kl", "org/model-001", "nope/nothing", "-d", str(folder))
    assert_clean_error(result, 2, "nope/nothing")


def test_bad_k_and_bad_where(folder):
    assert_clean_error(run("nearest", "org/model-001", "-k", "0", "-d", str(folder)), 1, "-k 0")
    assert_clean_error(run("nearest", "org/model-001", "-d", str(folder), "--where", "nope = 1"), 1, "--where")
    assert_clean_error(run("models", "-d", str(folder), "--where", "AND AND"), 1, "--where")


def test_missing_folder(tmp_path):
    assert_clean_error(run("info", "-d", str(tmp_path / "missing")), 1, "no such dataset folder")


def _corrupt(folder, how: str):
    part = folder / "vectors" / "test" / "part-001.parquet"
    if how == "truncated":
        part.write_bytes(part.read_bytes()[:300])
    elif how == "random":
        part.write_bytes(np.random.default_rng(1).bytes(4096))
    elif how == "file-version":
        table = pq.read_table(part)
        pq.write_table(table.replace_schema_metadata({PARQUET_VERSION_KEY: b"9"}), part)
    elif how == "dataset-version":
        path = folder / "llkl-db.json"
        raw = json.loads(path.read_text())
        raw["schema_version"] = 2
        path.write_text(json.dumps(raw))
        return path
    elif how == "no-files":
        for path in (folder / "vectors").rglob("*.parquet"):
            path.unlink()
        return folder / "vectors"
    elif how == "zero-rows":
        from llkl_db.io.vectors import write_vectors

        for path in (folder / "vectors").rglob("*.parquet"):
            write_vectors(path, [], 48)
        return folder / "vectors"
    return part


@pytest.mark.parametrize(
    ("how", "needle"),
    [
        ("truncated", "not a readable Parquet file"),
        ("random", "not a readable Parquet file"),
        ("file-version", "schema version 9"),
        ("dataset-version", "schema version 2"),
        ("no-files", "empty dataset"),
        ("zero-rows", "empty dataset"),
    ],
)
@pytest.mark.parametrize(
    "command", [["info"], ["models"], ["nearest", "org/model-001"], ["kl", "org/model-001", "org/model-002"]]
)
def test_bad_dataset_files(folder, how, needle, command):
    path = _corrupt(folder, how)
    assert_clean_error(run(*command, "-d", str(folder)), 1, str(path), needle)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_vector(tmp_path, value):
    rows = _rows()
    loglik = synthetic_loglik(len(rows), 48, seed=9)
    loglik[9, 3] = value  # EleutherAI/pythia-70m@main, in the second file
    folder = write_dataset(tmp_path / "ds", loglik, rows, files=2)
    line = assert_clean_error(
        run("nearest", "org/model-001", "-d", str(folder)),
        1,
        "part-001.parquet",
        "EleutherAI/pythia-70m@main",
        "non-finite",
    )
    assert "NaN or inf" in line


def test_mixed_text_sets(tmp_path):
    rows = _rows()
    rows[10]["text_set"] = "another-set"
    rows[10]["text_set_sha256"] = "a" * 64
    folder = write_dataset(tmp_path / "ds", synthetic_loglik(len(rows), 48), rows, files=2)
    assert_clean_error(run("models", "-d", str(folder)), 1, "part-001.parquet", "another-set", "test-texts")


def test_duplicate_entry_ids(tmp_path):
    rows = _rows()
    rows[10] = dict(rows[0])
    folder = write_dataset(tmp_path / "ds", synthetic_loglik(len(rows), 48), rows, files=2)
    assert_clean_error(run("info", "-d", str(folder)), 1, "duplicate entry id org/model-000@main", "part-001.parquet")
