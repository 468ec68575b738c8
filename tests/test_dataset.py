"""Loading, filtering, name resolution and every kind of bad input, through ``llkl_db.open``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import default_rows, synthetic_loglik, write_dataset

import llkl_db
from llkl_db.errors import LlklError, UnknownEntryError
from llkl_db.io.vectors import entry_id
from llkl_db.schema import PARQUET_VERSION_KEY


def _one_line_error(excinfo, *needles: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def _family_rows() -> list[dict]:
    """One model with several entries (revisions, a layer, a variant), one with steps only, others."""
    rows = []
    for revision, step in (("step1000", 1000), ("main", 143000), ("step2000", 2000)):
        rows.append(
            {
                "entry_id": entry_id("EleutherAI/pythia-70m", revision),
                "model_id": "EleutherAI/pythia-70m",
                "revision": revision,
                "step": step,
                "model_type": "gpt_neox",
                "n_params": 70_000_000,
            }
        )
    rows.append(
        {
            "entry_id": entry_id("EleutherAI/pythia-70m", "main", layer=3),
            "model_id": "EleutherAI/pythia-70m",
            "revision": "main",
            "step": 143000,
            "layer": 3,
            "n_layers": 6,
            "model_type": "gpt_neox",
        }
    )
    rows.append(
        {
            "entry_id": entry_id("EleutherAI/pythia-70m", "main", variant="q8_0"),
            "model_id": "EleutherAI/pythia-70m",
            "revision": "main",
            "variant": "q8_0",
            "model_type": "gpt_neox",
        }
    )
    for revision, step in (("step10", 10), ("step500", 500), ("step90", 90)):
        rows.append(
            {
                "entry_id": entry_id("org/ckpt-only", revision),
                "model_id": "org/ckpt-only",
                "revision": revision,
                "step": step,
                "model_type": "llama",
            }
        )
    rows += default_rows(6)
    return rows


@pytest.fixture
def family(tmp_path) -> Path:
    rows = _family_rows()
    return write_dataset(tmp_path / "family", synthetic_loglik(len(rows), 64, seed=1), rows, files=3)


# --- a good dataset -----------------------------------------------------------------------------


def test_open_folder_and_info(family):
    ds = llkl_db.open(family)
    assert len(ds) == 14
    assert ds.entries.height == 14
    assert "_file" not in ds.entries.columns
    info = ds.info()
    assert info["n_texts"] == 64
    assert info["n_entries"] == 14
    assert info["n_models"] == 8
    assert info["vector_files"] == 3
    assert info["schema_version"] == 1
    assert info["dataset_version"] == "1.0.0"
    assert info["size_bytes"] > 0
    assert ds.loglik.shape == (14, 64) and ds.loglik.dtype == np.float32


def test_open_string_path_and_missing_clip_threshold_uses_percentile(family):
    ds = llkl_db.open(str(family))
    raw = synthetic_loglik(14, 64, seed=1)
    is_layer = np.array([row.get("layer") is not None for row in _family_rows()])  # row 3 is a layer
    outputs, layers = np.percentile(raw[~is_layer], 2.0), np.percentile(raw[is_layer], 2.0)
    assert ds.clip_thresholds == {"outputs": pytest.approx(outputs), "layers": pytest.approx(layers)}
    expected = np.maximum(raw, np.where(is_layer, layers, outputs)[:, None].astype(np.float32))
    np.testing.assert_array_equal(ds.loglik, expected)


def test_recorded_clip_threshold_is_used(tmp_path):
    raw = synthetic_loglik(8, 50, seed=2)
    root = write_dataset(tmp_path / "d", raw, clip_threshold=-320.0)
    ds = llkl_db.open(root)
    np.testing.assert_array_equal(ds.loglik, np.maximum(raw, np.float32(-320.0)))
    assert ds.info()["clip_threshold"] == -320.0


def test_where_sql_filters_entries(family):
    ds = llkl_db.open(family)
    outputs = ds.filter("layer IS NULL AND variant IS NULL")
    assert len(outputs) == 12
    llama = ds.filter("model_type = 'llama' AND step >= 90")
    assert sorted(llama.entries["entry_id"].to_list()) == ["org/ckpt-only@step500", "org/ckpt-only@step90"]
    assert len(ds.filter(None)) == len(ds.filter("  ")) == 14
    import polars as pl

    assert len(ds.filter(pl.col("model_type") == "gpt_neox")) == 5
    # filters compose
    assert len(outputs.filter("model_type = 'gpt_neox'")) == 3


def test_where_errors_are_one_line(family):
    ds = llkl_db.open(family)
    with pytest.raises(LlklError) as excinfo:
        ds.filter("no_such_column = 3")
    message = _one_line_error(excinfo, "where 'no_such_column = 3'", "no_such_column")
    assert "--" not in message  # library errors name the parameter; the CLI names its flag
    with pytest.raises(LlklError) as excinfo:
        ds.filter("layer IS NULL AND AND")
    _one_line_error(excinfo, "where 'layer IS NULL AND AND'")


def test_resolve_prefers_output_layer_final_revision_reference_precision(family):
    ds = llkl_db.open(family)
    resolved = ds.resolve("EleutherAI/pythia-70m")
    assert resolved.entry_id == "EleutherAI/pythia-70m@main"
    assert resolved.note is not None and "5 entries" in resolved.note and "EleutherAI/pythia-70m@main" in resolved.note
    assert (
        "output layer" in resolved.note and "final revision" in resolved.note and "reference precision" in resolved.note
    )
    # without a 'main' revision: the largest step
    assert ds.resolve("org/ckpt-only").entry_id == "org/ckpt-only@step500"
    # MODEL@REV and full entry ids
    assert ds.resolve("EleutherAI/pythia-70m@step1000").entry_id == "EleutherAI/pythia-70m@step1000"
    exact = ds.resolve("EleutherAI/pythia-70m@main:L3")
    assert exact.entry_id == "EleutherAI/pythia-70m@main:L3" and exact.note is None
    # a model with one entry resolves silently
    single = ds.resolve("org/model-002")
    assert single.entry_id == "org/model-002@main" and single.note is None


def test_unknown_name_lists_closest(family):
    ds = llkl_db.open(family)
    with pytest.raises(UnknownEntryError) as excinfo:
        ds.resolve("EleutherAI/pythia-70")
    message = _one_line_error(
        excinfo, "unknown model or entry 'EleutherAI/pythia-70'", "closest", "EleutherAI/pythia-70m"
    )
    assert excinfo.value.exit_code == 2
    assert message.startswith("unknown")
    with pytest.raises(UnknownEntryError) as excinfo:
        ds.kl("org/model-001", "zzzz-nothing-like-it")
    _one_line_error(excinfo, "zzzz-nothing-like-it", "llkl-db models")
    with pytest.raises(UnknownEntryError):
        ds.resolve("EleutherAI/pythia-70m@step999")


def test_nearest_and_kl_values(family):
    ds = llkl_db.open(family)
    clipped = ds.loglik.astype(np.float64)
    ids = ds.entries["entry_id"].to_list()
    b = ds.metadata.mean_text_bytes
    result = ds.nearest("org/model-001", k=4)
    assert result.query == "org/model-001@main"
    table = result.table
    assert table.height == 4
    assert table["rank"].to_list() == [1, 2, 3, 4]
    assert "org/model-001@main" not in table["entry_id"].to_list()
    q = ids.index("org/model-001@main")
    var = ((clipped - clipped[q]) - (clipped - clipped[q]).mean(axis=1, keepdims=True)) ** 2
    var = var.mean(axis=1)
    var[q] = np.inf
    want = [ids[i] for i in np.argsort(var)[:4]]
    assert table["entry_id"].to_list() == want
    np.testing.assert_allclose(table["kl_bpb"].to_numpy(), np.sort(var)[:4] / (2 * b * np.log(2)), rtol=1e-10)
    assert (table["se_bpb"] > 0).all()
    assert result.scale.startswith("Scale (arXiv 2505.15353")
    # level: the relation (llkl_db.relations), from the metadata where they say it
    assert set(table["level"].to_list()) <= {
        "same weights",
        "quantization",
        "fine-tune/continued training",
        "same family",
        "unrelated",
        "logit-lens layer",
    }
    # where restricts the neighbours, not the query
    only_llama = ds.filter("model_type = 'llama'").nearest("org/model-001", k=10)
    assert set(
        ds.entries.filter(ds.entries["entry_id"].is_in(only_llama.table["entry_id"].implode()))["model_type"]
    ) == {"llama"}
    with pytest.raises(LlklError, match="k 0"):
        ds.nearest("org/model-001", k=0)
    pair = ds.kl("org/model-001", "EleutherAI/pythia-70m")
    assert pair.b == "EleutherAI/pythia-70m@main"
    j = ids.index("EleutherAI/pythia-70m@main")
    assert pair.kl_bpb == pytest.approx(np.var(clipped[q] - clipped[j]) / (2 * b * np.log(2)), rel=1e-12)
    assert pair.n_texts == 64
    assert set(pair.to_dict()) >= {"a", "b", "kl_bpb", "se_bpb", "kl_nats", "se_nats", "level"}


def test_kl_matrix_on_views_equals_brute_force(family):
    ds = llkl_db.open(family)
    for view in (ds, ds.filter("layer IS NULL AND variant IS NULL")):
        ids, kl, se = view.kl_matrix(with_se=True)
        assert ids == view.entries["entry_id"].to_list()
        x = view.loglik.astype(np.float64)
        diff = x[:, None, :] - x[None, :, :]
        var = diff.var(axis=-1)
        b = ds.metadata.mean_text_bytes
        np.testing.assert_allclose(kl, var / (2 * b * np.log(2)), rtol=1e-3)
        d = diff - diff.mean(axis=-1, keepdims=True)
        want_se = np.sqrt(np.maximum((d**4).mean(-1) - var**2, 0) / x.shape[1]) / (2 * b * np.log(2))
        np.testing.assert_allclose(se, want_se, rtol=1e-3, atol=1e-12)
        _, kl_only, none = view.kl_matrix()
        assert none is None
        np.testing.assert_allclose(kl_only, kl)


def test_models_table_and_search(family):
    ds = llkl_db.open(family)
    models = ds.models()
    assert models.height == 8
    pythia = models.filter(models["model_id"] == "EleutherAI/pythia-70m").row(0, named=True)
    assert pythia["entries"] == 5 and pythia["revisions"] == 3 and pythia["layers"] == 1 and pythia["variants"] == 1
    assert ds.models(search="PYTHIA")["model_id"].to_list() == ["EleutherAI/pythia-70m"]
    assert ds.filter("model_type = 'llama'").models()["model_id"].to_list() == [
        "org/ckpt-only",
        "org/model-000",
        "org/model-003",
    ]


# --- bad input: each a one-line LlklError naming the file and the problem -------------------------


def test_missing_folder(tmp_path):
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(tmp_path / "nowhere")
    _one_line_error(excinfo, str(tmp_path / "nowhere"), "no such dataset folder")


def test_source_that_is_a_file(tmp_path):
    path = tmp_path / "file.parquet"
    path.write_bytes(b"x")
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(path)
    _one_line_error(excinfo, str(path), "not a file")


def test_missing_metadata_file(family):
    (family / "llkl-db.json").unlink()
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(family)
    _one_line_error(excinfo, "llkl-db.json", "missing dataset metadata")


def test_missing_vector_file_after_open(family):
    ds = llkl_db.open(family)
    path = family / "vectors" / "test" / "part-000.parquet"
    path.unlink()
    with pytest.raises(LlklError) as excinfo:
        ds.loglik  # noqa: B018
    _one_line_error(excinfo, str(path), "missing vector file")


def test_truncated_parquet(family):
    path = family / "vectors" / "test" / "part-001.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(family)
    _one_line_error(excinfo, str(path), "not a readable Parquet file")


def test_random_bytes_parquet(family):
    path = family / "vectors" / "test" / "part-002.parquet"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(family)
    _one_line_error(excinfo, str(path), "not a readable Parquet file")


def test_wrong_schema_version_in_file_metadata(family):
    path = family / "vectors" / "test" / "part-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({PARQUET_VERSION_KEY: b"2"}), path)
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(family)
    _one_line_error(excinfo, str(path), "schema version 2", "reads version 1")
    pq.write_table(table.replace_schema_metadata({}), path)
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(family)
    _one_line_error(excinfo, str(path), "schema version missing")


def test_wrong_schema_version_in_dataset_metadata(family):
    path = family / "llkl-db.json"
    raw = json.loads(path.read_text())
    raw["schema_version"] = 7
    path.write_text(json.dumps(raw))
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(family)
    _one_line_error(excinfo, str(path), "schema version 7")


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda raw: raw.pop("n_texts"), "missing field(s) n_texts"),
        (lambda raw: raw.update(dataset_version="one"), "is not X.Y.Z"),
        (lambda raw: raw.update(mean_text_bytes=0), "mean_text_bytes must be positive"),
        (lambda raw: raw.update(clip_threshold="low"), "clip_threshold must be a number"),
    ],
)
def test_bad_dataset_metadata_fields(family, edit, needle):
    path = family / "llkl-db.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(family)
    _one_line_error(excinfo, str(path), needle)


def test_metadata_without_clip_threshold_field(family):
    """clip_threshold is optional in the file: absent means 'compute the percentile'."""
    path = family / "llkl-db.json"
    raw = json.loads(path.read_text())
    raw.pop("clip_threshold")
    path.write_text(json.dumps(raw))
    ds = llkl_db.open(family)
    assert ds.metadata.clip_threshold is None
    assert ds.loglik.shape == (14, 64)


def test_metadata_not_json(family):
    path = family / "llkl-db.json"
    path.write_text("{not json")
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(family)
    _one_line_error(excinfo, str(path), "not valid JSON")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_name_file_and_entry(tmp_path, value):
    loglik = synthetic_loglik(6, 20, seed=3)
    loglik[4, 7] = value
    root = write_dataset(tmp_path / "d", loglik, files=2)
    ds = llkl_db.open(root)  # open is cheap; the vectors are read on first use
    with pytest.raises(LlklError) as excinfo:
        ds.nearest("org/model-000", k=2)
    _one_line_error(excinfo, "part-001.parquet", "org/model-004@main", "non-finite")


def test_mixed_text_sets_rejected(tmp_path):
    rows = default_rows(4)
    rows[2]["text_set"] = "other-texts"
    rows[2]["text_set_sha256"] = "f" * 64
    root = write_dataset(tmp_path / "d", synthetic_loglik(4, 10), rows, files=2)
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(root)
    _one_line_error(excinfo, "part-001.parquet", "org/model-002@main", "other-texts", "test-texts")


def test_same_name_other_hash_rejected(tmp_path):
    rows = default_rows(3)
    rows[0]["text_set_sha256"] = "0" * 64
    root = write_dataset(tmp_path / "d", synthetic_loglik(3, 10), rows)
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(root)
    _one_line_error(excinfo, "part-000.parquet", "org/model-000@main", "000000000000")


def test_duplicate_entry_ids_across_files(tmp_path):
    rows = default_rows(4)
    rows[3] = dict(rows[0])
    root = write_dataset(tmp_path / "d", synthetic_loglik(4, 10), rows, files=2)
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(root)
    _one_line_error(excinfo, "duplicate entry id org/model-000@main", "part-000.parquet", "part-001.parquet")


def test_wrong_vector_length_in_a_file(tmp_path):
    root = write_dataset(tmp_path / "d", synthetic_loglik(3, 10))
    write_dataset(tmp_path / "other", synthetic_loglik(2, 12), default_rows(2, model_prefix="x/y"))
    extra = root / "vectors" / "test" / "zz-other.parquet"
    extra.write_bytes((tmp_path / "other" / "vectors" / "test" / "part-000.parquet").read_bytes())
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(root)
    _one_line_error(excinfo, str(extra), "fixed-size list of 10")


def test_empty_dataset_no_files(tmp_path):
    root = write_dataset(tmp_path / "d", synthetic_loglik(2, 10))
    for path in (root / "vectors").rglob("*.parquet"):
        path.unlink()
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(root)
    _one_line_error(excinfo, str(root / "vectors"), "empty dataset", "no vector files")


def test_empty_dataset_files_with_no_rows(tmp_path):
    from llkl_db.io.vectors import write_vectors

    root = write_dataset(tmp_path / "d", synthetic_loglik(2, 10))
    for path in (root / "vectors").rglob("*.parquet"):
        write_vectors(path, [], 10)
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(root)
    _one_line_error(excinfo, str(root / "vectors"), "empty dataset", "hold no entries")


def test_an_empty_file_beside_others_is_fine(tmp_path):
    from llkl_db.io.vectors import write_vectors

    root = write_dataset(tmp_path / "d", synthetic_loglik(3, 10))
    write_vectors(root / "vectors" / "test" / "empty.parquet", [], 10)
    ds = llkl_db.open(root)
    assert len(ds) == 3
    assert ds.nearest("org/model-000", k=5).table.height == 2


def test_layers_have_their_own_clip_threshold(tmp_path):
    """Logit-lens layers score far below outputs; one threshold over both would never clip outputs."""
    from llkl_db.math import clip_threshold
    from llkl_db.merge import merge

    outputs = synthetic_loglik(6, 200, seed=1)
    layers = outputs[:3] * 30.0  # lens values: tens of times lower
    rows = default_rows(6) + [
        {"entry_id": f"org/model-00{i}@main:L{i}", "model_id": f"org/model-00{i}", "layer": i} for i in range(3)
    ]
    src = write_dataset(tmp_path / "src", np.vstack([outputs, layers]), rows)
    meta = merge([src], tmp_path / "ds")
    assert meta.clip_threshold == pytest.approx(clip_threshold(outputs), rel=1e-6)
    assert meta.layer_clip_threshold == pytest.approx(clip_threshold(layers), rel=1e-6)
    ds = llkl_db.open(tmp_path / "ds")
    np.testing.assert_allclose(ds.vector("org/model-000"), np.maximum(outputs[0], np.float32(meta.clip_threshold)))
    np.testing.assert_allclose(
        ds.vector("org/model-001@main:L1"), np.maximum(layers[1], np.float32(meta.layer_clip_threshold))
    )
    assert (outputs < meta.clip_threshold).mean() == pytest.approx(0.02, abs=0.002)
