"""Whole-dataset work in bounded memory (issue 12): merge, the index build, --reorder and
validate read the vectors in blocks; what still needs the whole matrix refuses in one line."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import default_rows, synthetic_loglik, write_dataset
from typer.testing import CliRunner

import llkl_db
from llkl_db import math as llmath
from llkl_db.analysis import entry_map, scale_table
from llkl_db.cli.app import app
from llkl_db.errors import LlklError
from llkl_db.indexing import build_index
from llkl_db.io import swap
from llkl_db.io.folder import DatasetFolder
from llkl_db.io.source import embedded_dataset_path
from llkl_db.math.quantile import StreamingPercentile
from llkl_db.merge import merge
from llkl_db.validation import validate

runner = CliRunner()
TESTS = Path(__file__).parent


def _families(k: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((8, n)) * np.arange(8, 0, -1)[:, None] * 3
    fam = rng.standard_normal((k // 10 + 1, 8))
    out = -400 + rng.standard_normal(n) * 30 + fam[np.arange(k) // 10] @ v + rng.standard_normal((k, n)) * 0.8
    return np.minimum(out, -1.0).astype(np.float32)


def _shards(root: Path, k: int, n: int) -> list[Path]:
    """Two shards of outputs and logit-lens layers (two clip groups), several files each."""
    loglik = _families(k, n, seed=3)
    rows = default_rows(k)
    for i, row in enumerate(rows):
        if i % 4 == 0:
            row.update(layer=1, n_layers=4, entry_id=row["entry_id"] + ":L1")
            loglik[i] -= 40.0
    half = k // 2
    return [
        write_dataset(root / "s1", loglik[:half], rows[:half], files=3, kind="models"),
        write_dataset(root / "s2", loglik[half:], rows[half:], files=3, kind="layers"),
    ]


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("index.json", "README.md")  # (they hold the build time)
    }


def test_the_streaming_percentile_is_numpys(monkeypatch):
    monkeypatch.setattr("llkl_db.math.quantile._CHUNK", 97)  # many chunks per block
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 3000))
        values = (rng.standard_normal(n) * rng.choice([1e-3, 1.0, 300.0]) - rng.choice([0.0, 300.0])).astype(np.float32)
        if trial % 3 == 0:
            values = np.round(values)  # ties
        if trial % 5 == 0:
            values[: n // 2] = 0.0
            values[n // 2 : n // 2 + 2] = -0.0
        for percentile in (0.0, 2.0, 50.0, 100.0, float(rng.uniform(0, 100))):
            stat = StreamingPercentile(percentile)
            blocks = np.array_split(values, int(rng.integers(1, 5)))
            for block in blocks:
                stat.add_coarse(block)
            for block in blocks:
                stat.add_fine(block)
            assert stat.value() == float(np.percentile(values, percentile)), (trial, percentile)


def test_merge_in_blocks_and_buckets_writes_the_same_bytes_and_thresholds_of_the_whole_matrix(tmp_path, monkeypatch):
    shards = _shards(tmp_path, 700, 48)
    merge(shards, tmp_path / "one")
    monkeypatch.setattr("llkl_db.indexing.BLOCK_ROWS", 96)
    monkeypatch.setattr("llkl_db.io.ordered.BUCKET_BYTES", 64 * 1024)  # buckets of 64 rows
    merge(shards, tmp_path / "many")
    one, many = _digests(tmp_path / "one"), _digests(tmp_path / "many")
    for rounded in ("index/coords.bin", "index/residuals.bin"):  # other block shapes: compared below
        assert one.pop(rounded) and many.pop(rounded)
    assert one == many  # vectors in the same order, same entries, basis, thresholds, tables and texts
    a, b = DatasetFolder(tmp_path / "one").read_index(), DatasetFolder(tmp_path / "many").read_index()
    assert a.entries["entry_id"].to_list() == b.entries["entry_id"].to_list()
    np.testing.assert_allclose(a.coords, b.coords, rtol=1e-5, atol=1e-4)  # other block shapes: rounding only
    np.testing.assert_allclose(a.residuals, b.residuals, rtol=1e-4, atol=1e-3)

    folders = [DatasetFolder(s) for s in shards]
    from llkl_db.io.vectors import read_loglik, scan_entries

    entries = scan_entries([f for d in folders for f in d.vector_files()], 48, folders[0].text_set_key)
    matrix = read_loglik(entries, 48)
    groups = entries["layer"].is_not_null().to_numpy().astype(np.int8)
    per_row = llmath.group_thresholds(matrix, groups, {}, llmath.DEFAULT_CLIP_PERCENTILE)
    meta = DatasetFolder(tmp_path / "many").metadata
    assert meta.clip_threshold == float(per_row[groups == 0][0])
    assert meta.layer_clip_threshold == float(per_row[groups == 1][0])
    merged = llkl_db.open(tmp_path / "many")
    got = dict(zip(merged.entries["entry_id"].to_list(), merged.raw_loglik, strict=True))
    for eid, row in zip(entries["entry_id"].to_list(), matrix, strict=True):
        np.testing.assert_array_equal(got[eid], row)


def test_merge_splits_a_kind_over_files_beyond_the_rows_a_vector_file_may_hold(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    shards = _shards(tmp_path, 700, 48)
    merge(shards, tmp_path / "one")
    monkeypatch.setattr("llkl_db.io.vectors.MAX_ENTRIES_PER_FILE", 150)  # 128 rows a file: two groups
    merge(shards, tmp_path / "parts")
    one, parts = DatasetFolder(tmp_path / "one"), DatasetFolder(tmp_path / "parts")
    names = [p.relative_to(parts.vectors_dir).as_posix() for p in parts.vector_files()]
    assert names == [f"{k}/data-{i:03d}.parquet" for k in ("layers", "models") for i in range(3)]
    for kind in ("layers", "models"):
        files = sorted((parts.vectors_dir / kind).glob("*.parquet"))
        assert [pq.ParquetFile(f).metadata.num_rows for f in files] == [128, 128, 94]
        whole = pq.read_table(one.vector_path(kind, "data"))
        assert pq.read_table(files).equals(whole)  # the same rows in the same order, cut in three
    ds = llkl_db.open(parts.root)
    assert len(ds.folder.read_index().files) == 6
    assert not [p for p in validate(parts.root).problems if "provenance" not in p.reason]  # (test rows lack it)


def test_merge_and_index_run_under_a_budget_smaller_than_the_matrix(tmp_path, monkeypatch):
    k, n = 1200, 64
    monkeypatch.setattr("llkl_db.math.index.DEFAULT_SAMPLE", 100)  # the fit's sample: 100 x 64 float64
    monkeypatch.setenv("LLKL_DB_MEMORY_BUDGET", str(k * n * 4 // 4))  # a quarter of the float32 matrix
    shards = _shards(tmp_path, k, n)
    merge(shards, tmp_path / "ds")
    ds = llkl_db.open(tmp_path / "ds")
    assert len(ds) == k and ds.nearest(ds.entries["entry_id"][0], k=3).search["method"] == "index"
    with pytest.raises(LlklError, match="needs about"):
        ds.kl_matrix()
    # no recorded threshold: `llkl-db index` computes it in blocks too
    root = write_dataset(tmp_path / "plain", _families(k, n))
    got = runner.invoke(app, ["index", str(root), "--dim", "4", "--sample", "100"])
    assert got.exit_code == 0, got.output
    whole = _families(k, n)
    assert DatasetFolder(root).read_index().info.clip_thresholds == {"outputs": float(np.percentile(whole, 2.0))}


REORDER_SCRIPT = """
import sys
from llkl_db.indexing import reorder_by_index
from llkl_db.io.folder import open_folder
reorder_by_index(open_folder(sys.argv[1]))
"""


@pytest.mark.parametrize(
    "step", ["reorder:vectors", "swap:staged", "swap:journal", "swap:aside", "swap:switched", "swap:removed", None]
)
def test_a_reorder_killed_at_any_step_leaves_the_old_or_the_new_dataset(tmp_path, step):
    loglik = _families(300, 40, seed=5)
    rng = np.random.default_rng(1)
    root = write_dataset(tmp_path / "ds", loglik[rng.permutation(300)], files=2, clip_threshold=-450.0)
    (root / "notes.txt").write_text("kept")  # a file reorder does not write: it must survive
    build_index(DatasetFolder(root), d=6)
    before = _digests(root)
    reference = llkl_db.open(root)
    queries = reference.entries["entry_id"].to_list()[::60]
    expected = {q: reference.nearest(q, k=4).table["entry_id"].to_list() for q in queries}

    env = {**os.environ, swap.FAULT_ENV: step or ""}
    done = subprocess.run(
        [sys.executable, "-c", REORDER_SCRIPT, str(root)], env=env, cwd=TESTS.parent, capture_output=True, timeout=120
    )
    assert done.returncode == (0 if step is None else 70), done.stderr
    ds = llkl_db.open(root)  # finishes or undoes the switch
    after = _digests(root)
    changed = after != before
    assert changed or step in ("reorder:vectors", "swap:staged", "swap:journal", "swap:aside"), step
    if step is None:
        assert changed
    assert (root / "notes.txt").read_text() == "kept"
    assert not [n.name for n in tmp_path.iterdir() if n.name.startswith(".")], step  # no staging or journal left
    assert not [p for p in validate(root).problems if "/index/" in p.where or "llkl-db.json" in p.where]
    for q in queries:
        assert ds.nearest(q, k=4).table["entry_id"].to_list() == expected[q]


def test_validate_reads_a_file_in_batches_and_names_rows_across_them(tmp_path, monkeypatch):
    loglik = synthetic_loglik(90, 24)
    loglik[70, 5] = 0.5  # a positive log-likelihood in the fifth batch
    rows = default_rows(90)
    rows[40]["entry_id"] = rows[3]["entry_id"]  # a duplicate, batches apart
    rows[40]["model_id"] = rows[3]["model_id"]
    root = write_dataset(tmp_path / "ds", loglik, rows)
    monkeypatch.setattr(sys.modules["llkl_db.validation.validate"], "VALIDATE_BATCH_ROWS", 16)
    monkeypatch.setenv("LLKL_DB_MEMORY_BUDGET", "16K")  # below the 90 x 24 float64 values (17 KB)
    report = validate(root)
    reasons = {(p.entry, p.reason.split(" (")[0].split(" nats")[0]) for p in report.problems}
    assert (rows[3]["entry_id"], "duplicate entry id") in reasons
    assert any(e == rows[70]["entry_id"] and r.startswith("positive log-likelihood") for e, r in reasons)
    assert len(report.entries) == 89
    with pytest.raises(LlklError, match="keeping the vectors"):
        validate(root, keep_vectors=True)


def test_the_embedded_dataset_ships_a_valid_index_that_a_merge_rebuilds(tmp_path):
    source = DatasetFolder(embedded_dataset_path())
    assert source.has_index() and validate(source.root).ok
    root = tmp_path / "emb"
    shutil.copytree(source.root, root)
    old = llkl_db.open(root)
    original = old.entry(old.entries["entry_id"][0])
    shard = DatasetFolder(tmp_path / "shard")
    shard.add_text_set(source.text_set)
    row = {**original, "entry_id": "contrib/copy@main", "model_id": "contrib/copy", "revision": "main"}
    row.update(layer=None, n_layers=None, variant=None, step=None, base_model=None, loglik=old.raw_loglik[0])
    shard.write_entries(shard.entry_path(row["entry_id"], "models"), [row])
    merge([shard.root], root)
    folder = DatasetFolder(root)
    assert folder.read_index().info.n_entries == len(old) + 1
    assert validate(root).ok
    top = llkl_db.open(root).nearest("contrib/copy@main", k=1)
    assert top.search["method"] == "index" and top.table["entry_id"][0] == original["entry_id"]


def test_scale_reads_only_its_pairs_rows_and_whole_matrix_work_refuses_in_one_line(tmp_path, monkeypatch):
    k, n = 400, 64
    root = write_dataset(tmp_path / "ds", _families(k, n), clip_threshold=-450.0)
    plain = write_dataset(tmp_path / "plain", _families(k, n), clip_threshold=-450.0)
    build_index(DatasetFolder(root), d=4)
    full = llkl_db.open(root)
    full._store.clipped  # noqa: B018 - the whole matrix: the reference
    expected = scale_table(full, max_pairs=5).table
    monkeypatch.setenv("LLKL_DB_MEMORY_BUDGET", str(k * n * 4 // 4))  # a quarter of the matrix
    ds = llkl_db.open(root)
    assert scale_table(ds, max_pairs=5).table.equals(expected)
    assert not ds._store.matrix_loaded
    refusals = [
        (ds.kl_matrix, "the KL matrix of 400 entries"),
        (lambda: entry_map(ds), "the pca map of 400 entries"),
        (lambda: scale_table(ds), "reading 400 entries"),  # every pair: every row
        (lambda: scale_table(llkl_db.open(plain), max_pairs=5), "reading the whole matrix"),  # no index
    ]
    for call, what in refusals:
        with pytest.raises(LlklError) as exc:
            call()
        assert "\n" not in str(exc.value) and what in str(exc.value) and "needs about" in str(exc.value)
    got = runner.invoke(app, ["map", "--dataset", str(root)])
    assert got.exit_code != 0 and "needs about" in got.output
