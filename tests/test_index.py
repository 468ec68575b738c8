"""The search index (issue 12): a valid lower bound, exact answers, its files and their refusals."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pyarrow as pa
import pytest
from helpers import synthetic_loglik, write_dataset
from typer.testing import CliRunner

import llkl_db
from llkl_db.cli.app import app
from llkl_db.errors import LlklError
from llkl_db.indexing import build_index, keep_basis_decision
from llkl_db.io.folder import DatasetFolder
from llkl_db.io.metadata import DatasetMetadata, write_metadata
from llkl_db.io.source import embedded_dataset_path
from llkl_db.math import index as mindex
from llkl_db.merge import merge
from llkl_db.validation import validate

runner = CliRunner()


def families(k: int, n: int, seed: int = 0) -> np.ndarray:
    """Low rank plus family and member noise, with exact duplicates and near ties."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((8, n)) * np.arange(8, 0, -1)[:, None] * 3
    fam = rng.standard_normal((k // 10 + 1, 8))
    out = -400 + rng.standard_normal(n) * 30 + (fam[np.arange(k) // 10] @ v)
    out += rng.standard_normal((k, n)) * 0.8
    out += rng.standard_normal((k, 1)) * 20
    out = np.minimum(out, -1.0).astype(np.float32)  # log-likelihoods: a reader refuses positive ones
    out[1] = out[0]  # an exact duplicate
    out[2] = out[0] + np.float32(1e-4)  # same distances up to a constant shift: a tie
    out[3] = out[0] + (1e-5 * rng.standard_normal(n)).astype(np.float32)  # a near tie
    out[5] = out[4] + (1e-3 * rng.standard_normal(n)).astype(np.float32)
    return out


@pytest.mark.parametrize("d", [1, 4, 16])
def test_the_bound_never_exceeds_the_exact_distance(d):
    loglik = families(400, 300)
    clipped = np.maximum(loglik, np.float32(np.percentile(loglik, 2)))
    mu, basis, _ = mindex.fit_basis(clipped[::3], d=d)
    mu = mu.astype(np.float32)
    coords, residuals, _ = mindex.project(clipped, mu, basis)
    norms = np.sqrt(np.einsum("ij,ij->i", coords.astype(np.float64), coords.astype(np.float64)) + residuals**2)
    tau = mindex.tau_for(mindex.orthonormality_error(basis))
    c = mindex.center_rows(clipped)
    for q in [0, 1, 2, 3, 4, 5, 77, 399]:
        exact = np.einsum("ij,ij->i", c - c[q], c - c[q])
        bounds = mindex.lower_bounds(coords, residuals, norms, q, tau)
        assert np.all(bounds <= exact), (q, np.max(bounds - exact))
    # tight enough to be useful: most of the distance is seen
    assert d < 4 or np.median(bounds / np.maximum(exact, 1e-30)) > 0.5


def test_the_bound_holds_for_a_basis_off_orthonormal_and_an_outside_vector():
    rng = np.random.default_rng(3)
    clipped = families(200, 128, seed=3)
    mu, basis, _ = mindex.fit_basis(clipped, d=8)
    basis = (basis + 1e-6 * rng.standard_normal(basis.shape)).astype(np.float32)  # off by ~1e-6
    coords, residuals, totals = mindex.project(clipped, mu, basis)
    tau = mindex.tau_for(mindex.orthonormality_error(basis))
    assert tau > mindex.BASE_TAU
    outside = clipped[7] + 0.01 * rng.standard_normal(128).astype(np.float32)
    y, r, t = mindex.project(outside[None, :], mu, basis)
    bounds = mindex.lower_bounds(coords, residuals, totals, (y[0], r[0], t[0]), tau)
    c = mindex.center_rows(clipped)
    co = mindex.center_rows(outside)
    assert np.all(bounds <= np.einsum("ij,ij->i", c - co, c - co))


def test_the_bound_holds_for_near_rows_far_from_the_mean():
    """||y_j - y_q||^2 comes from float32 dot products: cancellation is worst for near rows with
    large coordinates, which the rounding deflation must cover (tau = 0: no other slack)."""
    rng = np.random.default_rng(3)
    d = 64
    centre = rng.standard_normal(d) * 1e3
    coords = (centre + rng.standard_normal((2000, d)) * np.logspace(-3, 1, 2000)[:, None]).astype(np.float32)
    residuals = np.zeros(2000)
    norms = mindex.coord_norms(coords)
    exact = coords.astype(np.float64) - coords[0].astype(np.float64)
    exact = np.einsum("ij,ij->i", exact, exact)
    bounds = mindex.lower_bounds(coords, residuals, norms, 0, 0.0, block=512)
    assert np.all(bounds <= exact)
    assert np.all(exact - bounds <= 2e-5 * np.square(norms + norms[0]))  # and loses no more than that


def test_search_is_exact_with_ties_and_masks():
    loglik = families(500, 200, seed=1)
    mu, basis, _ = mindex.fit_basis(loglik, d=6)
    coords, residuals, totals = mindex.project(loglik, mu, basis)
    tau = mindex.tau_for(mindex.orthonormality_error(basis))
    rng = np.random.default_rng(0)
    fetched = []

    def fetch(p):
        groups = np.unique(p // 64)
        rows = np.concatenate([np.arange(g * 64, min((g + 1) * 64, 500)) for g in groups])
        fetched.append(rows.size)
        return rows, loglik[rows]

    for q in [0, 1, 3, 4, 123, 499]:
        allowed = rng.random(500) > 0.2
        allowed[q] = False
        bounds = mindex.lower_bounds(coords, residuals, totals, q, tau)
        for k, prefix, groups in (
            (1, 4096, None),
            (3, 5, None),
            (10, 1, None),
            (40, 7, None),
            (5, 9, np.arange(500) // 64),
        ):
            res = mindex.search(bounds, allowed, fetch, loglik[q], k, prefix=prefix, group_of=groups)
            assert res.positions.tolist() == mindex.brute_force(loglik, loglik[q], k, allowed).tolist()
            assert res.var.size == k and np.all(np.diff(res.var) >= 0)
            assert k == 40 or res.n_reranked < allowed.sum()  # pruned
            assert res.next_bound >= res.var[-1]  # the certificate


def test_kd_order_is_a_permutation_with_leaves_of_near_rows():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, 5)) * 100
    coords = (centres[np.arange(640) % 20] + rng.standard_normal((640, 5))).astype(np.float32)
    order = mindex.kd_order(coords, leaf=32)
    assert sorted(order.tolist()) == list(range(640))
    labels = (np.arange(640) % 20)[order].reshape(-1, 32)
    assert np.mean([len(set(row)) for row in labels]) <= 2.0


@pytest.fixture
def embedded_copy(tmp_path):
    root = tmp_path / "emb"
    shutil.copytree(embedded_dataset_path(), root)
    return root


def test_nearest_through_the_index_equals_the_in_memory_path_on_the_embedded_dataset(embedded_copy):
    info = build_index(DatasetFolder(embedded_copy), d=8)
    indexed = llkl_db.open(embedded_copy)
    assert info.n_entries == indexed.entries.height and info.d == 8
    full = llkl_db.open(embedded_copy)
    full._store.clipped  # noqa: B018 - load the matrix: the in-memory path
    for name in indexed.entries["entry_id"].to_list():
        a, b = indexed.nearest(name, k=7), full.nearest(name, k=7)
        assert a.table["entry_id"].to_list() == b.table["entry_id"].to_list()
        np.testing.assert_allclose(a.table["kl_nats"], b.table["kl_nats"], rtol=1e-9, atol=0)
        assert a.search["method"] == "index" and b.search is None
    filtered = indexed.filter("layer IS NULL")
    full_filtered = full.filter("layer IS NULL")
    name = indexed.entries["entry_id"][0]
    assert filtered.nearest(name).table["entry_id"].to_list() == full_filtered.nearest(name).table["entry_id"].to_list()
    assert not indexed._store.matrix_loaded  # never read the matrix
    assert indexed.kl(name, indexed.entries["entry_id"][3]) == full.kl(name, full.entries["entry_id"][3])
    assert indexed.clip_thresholds == full.clip_thresholds


def test_merge_builds_the_index_in_kd_order_and_validate_checks_it(tmp_path):
    loglik = families(300, 96, seed=2)
    shard = write_dataset(tmp_path / "shard", loglik, files=3)
    out = tmp_path / "ds"
    merge([shard], out)
    folder = DatasetFolder(out)
    assert folder.has_index()
    index = folder.read_index()
    assert index.info.n_entries == 300 and index.files == ["vectors/test/data.parquet"]
    ds = llkl_db.open(out)
    ref = llkl_db.open(out)
    ref._store.clipped  # noqa: B018
    for name in ds.entries["entry_id"].to_list()[::37]:
        a, b = ds.nearest(name, k=5), ref.nearest(name, k=5)
        assert a.table["entry_id"].to_list() == b.table["entry_id"].to_list()
        np.testing.assert_allclose(a.table["kl_nats"], b.table["kl_nats"], rtol=1e-9)
        assert a.search["n_reranked"] < 300
    report = validate(out)
    assert not [p for p in report.problems if "/index/" in p.where]  # (the rows lack provenance)
    # a tampered coordinate is found: by its digest, and recomputed when the digest is updated too
    path = folder.index_path("coords.bin")
    coords = np.fromfile(path, dtype="<f4").reshape(300, -1)
    coords[:, 0] += 50.0
    coords.tofile(path)
    report = validate(out)
    assert any(p.where == str(path) and "sha256" in p.reason for p in report.problems)
    info_path = folder.index_path("index.json")
    raw = json.loads(info_path.read_text())
    raw["arrays"]["coords.bin"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    info_path.write_text(json.dumps(raw))
    report = validate(out)
    assert any("recomputed" in p.reason for p in report.problems)


def test_merge_keeps_the_basis_for_alike_contributions_and_refits_for_others(tmp_path):
    loglik = families(200, 256, seed=4)
    out = tmp_path / "ds"
    merge([write_dataset(tmp_path / "a", loglik[:150])], out)
    first = DatasetFolder(out).read_index()
    rows = [{"entry_id": f"new/m-{i:03d}@main"} for i in range(50)]
    merge([write_dataset(tmp_path / "b", loglik[150:], rows=rows)], out)
    second = DatasetFolder(out).read_index()
    assert second.info.n_entries == 200
    np.testing.assert_array_equal(first.basis, second.basis)  # kept: same structure
    rng = np.random.default_rng(9)
    odd = np.minimum(-400 + 80 * rng.standard_normal((30, 256)), -1.0).astype(np.float32)  # structure the basis misses
    rows = [{"entry_id": f"odd/m-{i:03d}@main"} for i in range(30)]
    merge([write_dataset(tmp_path / "c", odd, rows=rows)], out)
    third = DatasetFolder(out).read_index()
    assert not np.array_equal(second.basis, third.basis)
    assert keep_basis_decision(0.02, 0.03) and keep_basis_decision(0.2, 0.29) and not keep_basis_decision(0.2, 0.31)


def _indexed(tmp_path):
    root = write_dataset(tmp_path / "ds", synthetic_loglik(40, 32), clip_threshold=-400.0)
    build_index(DatasetFolder(root), d=4)
    return root


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_an_index_of_another_version_text_set_or_entry_list_is_refused(tmp_path):
    root = _indexed(tmp_path)
    llkl_db.open(root)
    folder = DatasetFolder(root)
    meta = folder.metadata
    info_path = folder.index_path("index.json")
    original = info_path.read_text()

    write_metadata(root, DatasetMetadata(**{**meta.__dict__, "dataset_version": "2.0.0"}))
    with pytest.raises(LlklError) as exc:
        llkl_db.open(root)
    assert "dataset version 1.0.0" in _one_line(exc) and "llkl-db index" in str(exc.value)
    write_metadata(root, meta)

    raw = json.loads(original)
    info_path.write_text(json.dumps({**raw, "text_set_sha256": "0" * 64}))
    with pytest.raises(LlklError) as exc:
        llkl_db.open(root)
    assert "another text set" in _one_line(exc)

    # the entry-id digest is validate's (a query does not hash every id)
    info_path.write_text(json.dumps({**raw, "entry_ids_sha256": "f" * 64}))
    assert any("entry ids do not match the digest" in p.reason for p in validate(root).problems)

    for version in (1, 99):  # 1: the coordinates inside entries.parquet, before the raw arrays
        info_path.write_text(json.dumps({**raw, "index_format_version": version}))
        with pytest.raises(LlklError) as exc:
            llkl_db.open(root)
        assert f"format version {version}, this llkl-db reads 2" in _one_line(exc) and "llkl-db index" in str(exc.value)

    # queries deflate the bound by the recorded orthonormality error: validate checks it
    assert raw["basis_orthonormality_error"] > 0
    info_path.write_text(json.dumps({**raw, "basis_orthonormality_error": 0.0}))
    assert any("basis_orthonormality_error" in p.reason for p in validate(root).problems)
    info_path.write_text(json.dumps({**raw, "basis_orthonormality_error": "small"}))
    with pytest.raises(LlklError) as exc:
        llkl_db.open(root)
    assert "basis_orthonormality_error must be a number" in _one_line(exc)

    wrong_shape = {**raw["arrays"], "coords.bin": {**raw["arrays"]["coords.bin"], "shape": [40, 5]}}
    info_path.write_text(json.dumps({**raw, "arrays": wrong_shape}))
    with pytest.raises(LlklError) as exc:
        llkl_db.open(root)
    assert "coords.bin must be recorded as <f4 of shape [40, 4]" in _one_line(exc)
    info_path.write_text(original)

    # a vector file rewritten after the index was built
    write_dataset(tmp_path / "ds", synthetic_loglik(41, 32), clip_threshold=-400.0)
    with pytest.raises(LlklError) as exc:
        llkl_db.open(root)
    assert "changed or missing since" in _one_line(exc)


@pytest.mark.parametrize("name", ["entries.parquet", "basis.parquet", "index.json", "coords.bin", "residuals.bin"])
def test_a_truncated_index_file_is_one_line(tmp_path, name):
    root = _indexed(tmp_path)
    path = DatasetFolder(root).index_path(name)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LlklError) as exc:
        llkl_db.open(root)
    assert str(path) in _one_line(exc)
    if name.endswith(".bin"):
        assert f"{len(data) // 2} bytes, expected {len(data)}" in str(exc.value)
        path.write_bytes(data + b"\0" * 8)  # longer than recorded: refused too
        with pytest.raises(LlklError) as exc:
            llkl_db.open(root)
        assert f"{len(data) + 8} bytes, expected {len(data)}" in _one_line(exc)


def test_index_entries_without_their_locations_are_one_line(tmp_path):
    import pyarrow.parquet as pq

    root = _indexed(tmp_path)
    path = DatasetFolder(root).index_path("entries.parquet")
    table = pq.read_table(path)
    for name, column in [
        ("row_group", None),
        ("row", pa.array([-1] * 40, pa.int64())),
        ("file", pa.nulls(40, pa.string())),
    ]:
        at = table.schema.get_field_index(name)
        pq.write_table(table.remove_column(at) if column is None else table.set_column(at, name, column), path)
        with pytest.raises(LlklError) as exc:
            llkl_db.open(root)
        assert str(path) in _one_line(exc) and name in str(exc.value)


def test_an_index_listing_other_rows_is_refused_when_they_are_fetched(tmp_path):
    import pyarrow.parquet as pq

    root = _indexed(tmp_path)
    path = DatasetFolder(root).index_path("entries.parquet")
    table = pq.read_table(path)
    ids = table["entry_id"].to_pylist()
    table = table.set_column(0, "entry_id", pa.array(ids[1:] + ids[:1]))  # the same ids, other rows
    pq.write_table(table, path)
    with pytest.raises(LlklError) as exc:
        llkl_db.open(root).nearest(ids[5], k=3)
    assert "does not hold the entries its index lists" in _one_line(exc)


def test_a_dataset_without_an_index_works_and_says_how_to_build_one(tmp_path, monkeypatch):
    root = write_dataset(tmp_path / "ds", synthetic_loglik(30, 16))
    ds = llkl_db.open(root)
    assert ds.info()["index"] is None
    monkeypatch.setattr("llkl_db.dataset.NOTE_ABOVE_BYTES", 0)
    result = ds.nearest("org/model-000@main", k=3)
    assert result.search is None and "llkl-db index DIR" in result.note
    got = runner.invoke(app, ["index", str(root), "--dim", "4"])
    assert got.exit_code == 0, got.output
    assert "30 entries, d=4" in got.output
    again = llkl_db.open(root).nearest("org/model-000@main", k=3)
    assert again.search is not None and again.table["entry_id"].to_list() == result.table["entry_id"].to_list()


def test_whole_matrix_work_over_the_memory_budget_is_refused_in_one_line(tmp_path, monkeypatch):
    root = _indexed(tmp_path)
    monkeypatch.setenv("LLKL_DB_MEMORY_BUDGET", "2K")
    ds = llkl_db.open(root)
    ds.nearest("org/model-001@main", k=3)  # the index path needs no matrix
    with pytest.raises(LlklError) as exc:
        ds.kl_matrix()
    assert "LLKL_DB_MEMORY_BUDGET" in _one_line(exc) and "needs about" in str(exc.value)
    got = runner.invoke(app, ["info", "--dataset", str(root)])
    assert got.exit_code == 0
    monkeypatch.setenv("LLKL_DB_MEMORY_BUDGET", "lots")
    with pytest.raises(LlklError):
        ds.kl_matrix()


def test_reorder_rewrites_vector_files_in_kd_order_streaming(tmp_path):
    import pyarrow.parquet as pq

    loglik = families(300, 64, seed=6)
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(300)
    root = write_dataset(tmp_path / "ds", loglik[shuffled], files=2, clip_threshold=-450.0)
    before = llkl_db.open(root)
    before._store.clipped  # noqa: B018
    got = runner.invoke(app, ["index", str(root), "--dim", "8", "--reorder"])
    assert got.exit_code == 0, got.output
    folder = DatasetFolder(root)
    for f in folder.vector_files():
        assert pq.ParquetFile(f).metadata.row_group(0).num_rows == 64
    after = llkl_db.open(root)
    assert sorted(after.entries["entry_id"].to_list()) == sorted(before.entries["entry_id"].to_list())
    for name in before.entries["entry_id"].to_list()[::50]:
        a, b = after.nearest(name, k=5), before.nearest(name, k=5)
        assert a.table["entry_id"].to_list() == b.table["entry_id"].to_list()
        np.testing.assert_allclose(a.table["kl_nats"], b.table["kl_nats"], rtol=1e-9)
    assert not [p for p in validate(root).problems if "/index/" in p.where]
