"""Validation of shards and datasets: a good one passes, each breakage is its own failing case."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from contrib_helpers import good_dataset, good_shard
from typer.testing import CliRunner

from llkl_db.cli import app
from llkl_db.validation import validate

runner = CliRunner()


def vector_file(root):
    return sorted((root / "vectors").rglob("*.parquet"))[0]


def rewrite(path, change):
    """Rewrite a vector file with ``change(table) -> table``, keeping its schema metadata."""
    table = pq.read_table(path)
    pq.write_table(change(table), path)


def set_column(table, name, values, type_=None):
    i = table.schema.get_field_index(name)
    field = table.schema.field(i)
    return table.set_column(i, field, pa.array(values, type=type_ or field.type))


def set_loglik(table, fn):
    ll = table.column("loglik").combine_chunks()
    n = ll.type.list_size
    m = ll.flatten().to_numpy(zero_copy_only=False).reshape(-1, n).copy()
    fn(m)
    arr = pa.FixedSizeListArray.from_arrays(pa.array(m.ravel(), type=pa.float32()), n)
    return table.set_column(table.schema.get_field_index("loglik"), table.schema.field("loglik"), arr)


def test_good_shard_and_dataset_pass(tmp_path):
    shard = validate(good_shard(tmp_path / "shard"))
    assert shard.ok, shard.problems
    assert len(shard.entries) == 3 and any("shard" in n for n in shard.notes)
    ds = validate(good_dataset(tmp_path / "ds"))
    assert ds.ok, ds.problems


def _nan(root):
    rewrite(vector_file(root), lambda t: set_loglik(t, lambda m: m.__setitem__((0, 3), np.nan)))


def _inf(root):
    rewrite(vector_file(root), lambda t: set_loglik(t, lambda m: m.__setitem__((1, 0), -np.inf)))


def _positive(root):
    rewrite(vector_file(root), lambda t: set_loglik(t, lambda m: m.__setitem__((0, 5), 12.0)))


def _implausible_bpb(root):
    rewrite(vector_file(root), lambda t: set_loglik(t, lambda m: m.__setitem__(0, m[0] * 100)))


def _wrong_length(root):
    def change(t):
        n = t.column("loglik").type.list_size + 1
        arr = pa.FixedSizeListArray.from_arrays(pa.array(np.full(t.num_rows * n, -50.0, np.float32)), n)
        schema = t.schema.set(t.schema.get_field_index("loglik"), pa.field("loglik", arr.type, nullable=False))
        return pa.Table.from_arrays([arr if c == "loglik" else t.column(c) for c in t.column_names], schema=schema)

    rewrite(vector_file(root), change)


def _float64(root):
    def change(t):
        n = t.column("loglik").type.list_size
        flat = t.column("loglik").combine_chunks().flatten().cast(pa.float64())
        arr = pa.FixedSizeListArray.from_arrays(flat, n)
        schema = t.schema.set(t.schema.get_field_index("loglik"), pa.field("loglik", arr.type, nullable=False))
        return pa.Table.from_arrays([arr if c == "loglik" else t.column(c) for c in t.column_names], schema=schema)

    rewrite(vector_file(root), change)


def _wrong_text_set(root):
    rewrite(vector_file(root), lambda t: set_column(t, "text_set_sha256", ["0" * 64] * t.num_rows))


def _duplicate_id(root):
    src = vector_file(root)
    (src.parent / "copy.parquet").write_bytes(src.read_bytes())


def _no_provenance(root):
    def change(t):
        t = set_column(t, "contributor", [None] * t.num_rows)
        return set_column(t, "library_versions", [None] * t.num_rows)

    rewrite(vector_file(root), change)


def _bad_bos(root):
    rewrite(vector_file(root), lambda t: set_column(t, "bos_policy", ["maybe"] * t.num_rows))


def _bad_entry_id(root):
    rewrite(vector_file(root), lambda t: set_column(t, "entry_id", [f"renamed-{i}" for i in range(t.num_rows)]))


def _too_many_tokens(root):
    def change(t):
        n = t.column("n_tokens").type.list_size
        arr = pa.FixedSizeListArray.from_arrays(pa.array(np.full(t.num_rows * n, 10_000, np.int32)), n)
        return t.set_column(t.schema.get_field_index("n_tokens"), t.schema.field("n_tokens"), arr)

    rewrite(vector_file(root), change)


def _schema_version(root):
    path = vector_file(root)
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({b"llkl_db.schema_version": b"7"}), path)


def _corrupt_file(root):
    vector_file(root).write_bytes(b"not parquet at all")


def _two_text_sets(root):
    src = next((root / "texts").glob("*.parquet"))
    (src.parent / "other.parquet").write_bytes(src.read_bytes())


def _metadata_mismatch(root):
    path = root / "llkl-db.json"
    meta = json.loads(path.read_text())
    meta["n_texts"] += 1
    path.write_text(json.dumps(meta))


BREAKAGES = {
    "nan": (_nan, "non-finite"),
    "inf": (_inf, "non-finite"),
    "positive loglik": (_positive, "positive log-likelihood"),
    "implausible bits per byte": (_implausible_bpb, "bits/byte"),
    "wrong vector length": (_wrong_length, "fixed-size list of 30"),
    "float64 vectors": (_float64, "float32"),
    "other text set": (_wrong_text_set, "scored on text set"),
    "duplicate entry id": (_duplicate_id, "duplicate entry id"),
    "no provenance": (_no_provenance, "no provenance"),
    "bad bos policy": (_bad_bos, "bos_policy 'maybe'"),
    "entry id not matching": (_bad_entry_id, "entry_id does not follow"),
    "token counts": (_too_many_tokens, "more tokens than bytes"),
    "schema version": (_schema_version, "schema version 7"),
    "corrupt parquet": (_corrupt_file, "not a readable Parquet"),
    "two text sets": (_two_text_sets, "exactly one text set"),
    "metadata mismatch": (_metadata_mismatch, "n_texts 31"),
}


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_each_breakage_fails_with_file_entry_and_reason(tmp_path, name):
    breakage, reason = BREAKAGES[name]
    root = good_dataset(tmp_path / "ds")
    breakage(root)
    report = validate(root)
    assert not report.ok
    assert any(reason in str(p) for p in report.problems), [str(p) for p in report.problems]
    result = runner.invoke(app, ["validate", str(root)])
    assert result.exit_code == 1
    assert "FAIL" in result.output and reason in result.output and "Traceback" not in result.output


def test_entry_named_in_failure(tmp_path):
    root = good_dataset(tmp_path / "ds")
    _nan(root)
    (problem,) = validate(root).problems
    assert problem.entry == "org/model-000@main" and problem.where.endswith(".parquet")


def test_against_target_refuses_existing_ids_and_other_text_sets(tmp_path):
    target = good_dataset(tmp_path / "target", prefix="org/model")
    fresh = validate(good_shard(tmp_path / "fresh", prefix="new/model"), against=target)
    assert fresh.ok, fresh.problems
    clash = validate(good_shard(tmp_path / "clash", prefix="org/model"), against=target)
    assert not clash.ok and all("already in the target" in p.reason for p in clash.problems)
    other = good_shard(tmp_path / "other", n=31, prefix="new/model")
    report = validate(other, against=target)
    assert not report.ok and "text set" in report.problems[0].reason


def test_cli_json_and_exit_zero(tmp_path):
    root = good_shard(tmp_path / "shard")
    result = runner.invoke(app, ["validate", str(root), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] and payload["n_entries"] == 3


def test_missing_folder_is_a_failure(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "no such folder" in result.output


def test_model_scores_table_checked(tmp_path):
    from llkl_db.io.scores import write_scores

    root = good_dataset(tmp_path / "ds")
    write_scores(root, [{"model_id": "org/model-000", "score": "s", "value": float("inf"), "source": None}])
    assert any("non-finite score" in str(p) for p in validate(root).problems)
    write_scores(root, [{"model_id": "org/model-000", "score": "s", "value": 1.0, "source": None}])
    assert validate(root).ok
    assert pl.read_parquet(root / "tables" / "model_scores.parquet").height == 1


def test_recompute_matches_a_real_build_and_catches_a_tampered_vector(tmp_path):
    pytest.importorskip("torch")
    from tiny_models import save_tiny

    from llkl_db.builders.build import BuildOptions
    from llkl_db.builders.jobs import Job
    from llkl_db.builders.run import run_jobs
    from llkl_db.io.texts import write_texts
    from llkl_db.textsets import load_text_set

    model = tmp_path / "tiny-llama"
    save_tiny(model, "llama")
    texts = [f"Text {i}: the quick brown fox jumps over {i} lazy dogs." for i in range(10)]
    write_texts(tmp_path / "tiny.parquet", texts, ["test"] * len(texts))
    job = Job(model_id=str(model), source=str(model), revision="local", layers=(1,))
    run_jobs([job], load_text_set(tmp_path / "tiny.parquet"), tmp_path / "shard", BuildOptions(progress=False))
    shard = tmp_path / "shard"

    from llkl_db.builders.recompute import validate_and_recompute

    report = validate_and_recompute(shard, 4, device="cpu")
    assert report.ok, report.problems
    assert sum("recomputed 4 texts" in n for n in report.notes) == 2  # output and layer 1

    path = sorted((shard / "vectors" / "models").glob("*.parquet"))[0]
    rewrite(path, lambda t: set_loglik(t, lambda m: m.__setitem__(0, m[0] - 5.0)))
    bad = validate_and_recompute(shard, 10, device="cpu")
    assert any("recomputed log-likelihood differs" in p.reason for p in bad.problems), bad.problems


def test_recompute_that_could_not_run_is_not_a_pass_unless_skips_are_allowed(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from llkl_db.builders.recompute import validate_and_recompute

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # no network here: fail fast
    root = good_shard(tmp_path / "shard")
    report = validate_and_recompute(root, 2, device="cpu")
    assert not report.ok and any("could not be recomputed" in p.reason for p in report.problems)
    assert any("not recomputed" in n for n in report.notes)
    allowed = validate_and_recompute(root, 2, device="cpu", allow_skip=True)
    assert allowed.ok, allowed.problems
