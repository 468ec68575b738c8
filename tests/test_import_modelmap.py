"""Import of the 2025 paper's pickles: real files in the published formats, a restricted
unpickler, and a malicious pickle refused without running anything."""

from __future__ import annotations

import os
import pickle

import numpy as np
import polars as pl
import pytest
from modelmap_files import write_modelmap
from typer.testing import CliRunner

import llkl_db
from llkl_db.cli import app
from llkl_db.errors import LlklError
from llkl_db.importers import import_modelmap, load_pickle
from llkl_db.importers.modelmap import base_model_of
from llkl_db.validation import validate

runner = CliRunner()


class Evil:
    """Unpickling this runs os.system: the classic malicious pickle."""

    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("modelmap")
    made = write_modelmap(folder / "files")
    out = folder / "dataset"
    summary = import_modelmap(folder / "files", out, dataset_version="1.0.0")
    return made, out, summary


def test_import_writes_a_valid_dataset_that_opens_and_queries(imported):
    made, out, summary = imported
    assert summary.n_entries == 36 and summary.n_scores == 36 * 8
    assert validate(out).ok
    ds = llkl_db.open(out)
    assert len(ds) == 36 and ds.metadata.text_set == "pile-10k" and ds.metadata.n_texts == 40
    entries = ds.entries
    policies = dict(zip(entries["model_type"], entries["bos_policy"], strict=True))
    assert policies == {
        "llama-2": "bos", "mistral": "bos", "gemma": "bos", "qwen2": "skip-first", "gpt2": "skip-first",
        "pythia": "skip-first",
    }  # fmt: skip
    assert summary.bos_policies == {"bos": 18, "skip-first": 18}
    assert set(entries["revision"]) == {"unknown"} and set(entries["dtype"]) == {"float16"}
    row = entries.filter(pl.col("model_id") == made["names"][2]).row(0, named=True)
    assert row["entry_id"] == f"{made['names'][2]}@unknown"
    assert row["model_type"] == made["data"][2]["model_type"] and row["n_params"] == 7_000_000_000
    assert "modelmap" in row["contributor"]
    fine_tune = entries.filter(pl.col("model_id") == made["names"][1]).row(0, named=True)
    assert fine_tune["base_model"] == made["names"][0]
    # vectors are the published values, as float32
    name = made["names"][5]
    stored = pl.read_parquet(sorted((out / "vectors").rglob("*.parquet"))[0])
    stored = stored.filter(pl.col("model_id") == name)["loglik"].to_numpy()[0]
    np.testing.assert_array_equal(stored, made["raw"][name].astype(np.float32))
    # queries work
    near = ds.nearest(made["names"][0], k=3)
    assert near.table.height == 3
    assert ds.kl(made["names"][0], made["names"][1]).kl_bpb > 0


def test_scores_table_and_card(imported):
    made, out, _ = imported
    scores = pl.read_parquet(out / "tables" / "model_scores.parquet")
    assert set(scores.columns) == {"model_id", "score", "value", "source"}
    mmlu = scores.filter((pl.col("model_id") == made["names"][3]) & (pl.col("score") == "score_v1_MMLU"))
    assert mmlu["value"][0] == pytest.approx(made["data"][3]["score_v1_MMLU"])
    assert "score_v1_6-taskmean" in set(scores["score"]) and "downloads" in set(scores["score"])
    card = (out / "README.md").read_text()
    assert "config_name: model_scores" in card and "tables/model_scores.parquet" in card
    assert "skip-first" in card and "arXiv:2502.16173" in card


def test_vectors_from_model_data_when_raw_file_is_absent(tmp_path):
    made = write_modelmap(tmp_path / "files", k=6)
    (tmp_path / "files" / "raw_log-likelihood_1018.pkl").unlink()
    summary = import_modelmap(tmp_path / "files", tmp_path / "out")
    assert summary.n_entries == 6
    stored = pl.read_parquet(sorted((tmp_path / "out" / "vectors").rglob("*.parquet"))[0])
    stored = stored.filter(pl.col("model_id") == made["names"][0])["loglik"].to_numpy()[0]
    np.testing.assert_array_equal(stored, made["data"][0]["log-likelihood-10k"].astype(np.float32))


def test_text_set_parquet_can_be_passed(tmp_path):
    from llkl_db.textsets.modelmap import import_modelmap as import_texts

    write_modelmap(tmp_path / "files", k=4)
    import_texts(tmp_path / "files" / "texts-10k-pile.jsonl", tmp_path / "pile-10k.parquet")
    (tmp_path / "files" / "texts-10k-pile.jsonl").rename(tmp_path / "elsewhere.jsonl")
    with pytest.raises(LlklError, match="name the 2025 texts jsonl"):
        import_modelmap(tmp_path / "files", tmp_path / "out")
    summary = import_modelmap(tmp_path / "files", tmp_path / "out", texts=tmp_path / "pile-10k.parquet")
    assert summary.n_entries == 4 and summary.text_set == "pile-10k"


def test_vector_length_must_match_the_text_set(tmp_path):
    write_modelmap(tmp_path / "files", k=3, n=40)
    lines = (tmp_path / "files" / "texts-10k-pile.jsonl").read_text().splitlines()
    (tmp_path / "files" / "texts-10k-pile.jsonl").write_text("\n".join(lines[:39]) + "\n")
    with pytest.raises(LlklError, match="has 40 values, the text set pile-10k has 39"):
        import_modelmap(tmp_path / "files", tmp_path / "out")


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pickles_of_every_protocol_load(tmp_path, protocol):
    value = {"m": np.linspace(-1, -2, 5), "s": np.float64(-3.5), "l": [{"a": 1, "t": ["x"]}]}
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    loaded = load_pickle(path)
    np.testing.assert_array_equal(loaded["m"], value["m"])
    assert loaded["s"] == -3.5 and loaded["l"] == [{"a": 1, "t": ["x"]}]


@pytest.mark.parametrize("target", ["raw_log-likelihood_1018.pkl", "model-data-1018.pkl"])
def test_malicious_pickle_is_refused_without_executing(tmp_path, target):
    write_modelmap(tmp_path / "files", k=3)
    sentinel = tmp_path / "PWNED"
    payload = {"org/model": Evil(sentinel)} if target.startswith("raw") else [{"model_name": Evil(sentinel)}]
    (tmp_path / "files" / target).write_bytes(pickle.dumps(payload))
    with pytest.raises(LlklError, match="refused global .*system"):
        import_modelmap(tmp_path / "files", tmp_path / "out")
    result = runner.invoke(app, ["import", "modelmap", str(tmp_path / "files"), "--out", str(tmp_path / "out2")])
    assert result.exit_code == 1 and "Error:" in result.output and "refused global" in result.output
    assert "Traceback" not in result.output
    assert not sentinel.exists()
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_other_globals_and_object_arrays_are_refused(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"f": pl.DataFrame}))
    with pytest.raises(LlklError, match="refused global"):
        load_pickle(path)
    path.write_bytes(pickle.dumps(np.array([1, "a"], dtype=object)))
    with pytest.raises(LlklError, match="objects"):
        load_pickle(path)
    path.write_bytes(b"garbage")
    with pytest.raises(LlklError, match="pickle"):
        load_pickle(path)


def test_base_model_from_tags():
    assert base_model_of(["base_model:a/b", "base_model:finetune:c/d"]) == "c/d"
    assert base_model_of(["base_model:a/b", "base_model:quantized:e/f"]) == "a/b"
    assert base_model_of(["base_model:merge:x/y"]) is None and base_model_of(None) is None


def test_cli_import(tmp_path):
    write_modelmap(tmp_path / "files", k=5)
    result = runner.invoke(app, ["import", "modelmap", str(tmp_path / "files"), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert "Imported 5 entries" in result.output and "skip-first" in result.output
    assert len(llkl_db.open(tmp_path / "ds")) == 5


@pytest.mark.parametrize("shape", ["list", "dict"])
def test_modeldata_1018_of_the_later_release(tmp_path, shape):
    made = write_modelmap(tmp_path / "files", k=5)
    for name in ("raw_log-likelihood_1018.pkl", "model-data-1018.pkl"):
        (tmp_path / "files" / name).unlink()
    records = [
        {"model_name": d["model_name"], "model_type": d["model_type"], "raw_log-likelihood-10k": made["raw"][n]}
        for d, n in zip(made["data"], made["names"], strict=True)
    ]
    payload = records if shape == "list" else {r.pop("model_name"): r for r in records}
    (tmp_path / "files" / "modeldata_1018.pkl").write_bytes(pickle.dumps(payload))
    summary = import_modelmap(tmp_path / "files", tmp_path / "out")
    assert summary.n_entries == 5
    ds = llkl_db.open(tmp_path / "out")
    np.testing.assert_array_equal(ds.vector(made["names"][3]), made["raw"][made["names"][3]].astype(np.float32))
    assert ds.entries.filter(pl.col("model_id") == made["names"][0])["bos_policy"][0] == "bos"  # llama-2


@pytest.mark.parametrize("payload", [[1, 2], {"a": [1.0]}, [{"model_name": "x"}], "text"])
def test_modeldata_1018_of_another_shape_is_refused_in_one_line(tmp_path, payload):
    write_modelmap(tmp_path / "files", k=3)
    for name in ("raw_log-likelihood_1018.pkl", "model-data-1018.pkl"):
        (tmp_path / "files" / name).unlink()
    (tmp_path / "files" / "modeldata_1018.pkl").write_bytes(pickle.dumps(payload))
    with pytest.raises(LlklError, match="modeldata_1018.pkl: ") as err:
        import_modelmap(tmp_path / "files", tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_kl_and_nearest_warn_across_bos_policies(imported):
    made, out, _ = imported
    ds = llkl_db.open(out)
    llama, qwen, mistral = made["names"][0], made["names"][2], made["names"][1]
    assert ds.kl(llama, qwen).warning and "bos_policy differs (bos vs skip-first)" in ds.kl(llama, qwen).warning
    assert ds.kl(llama, mistral).warning is None
    assert "bos_policy differs" in ds.nearest(llama, k=10).note
    # an id ending in @unknown resolves by model id, as a final revision
    assert ds.resolve(llama).entry_id == f"{llama}@unknown" and ds.resolve(llama).note is None
    result = runner.invoke(app, ["kl", llama, qwen, "--dataset", str(out)])
    assert result.exit_code == 0 and "bos_policy differs" in result.output
