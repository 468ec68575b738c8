"""The Python API: a reference generated from the docstrings (pdoc) that builds without warnings
and documents the main classes; the result classes' repr and their Polars / pandas forms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from helpers import synthetic_loglik, write_dataset

import llkl_db

ROOT = Path(__file__).resolve().parents[1]


def test_api_reference_builds_with_the_main_classes_documented(tmp_path):
    pytest.importorskip("pdoc", reason="pdoc is in the test extra")
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "build_api.py"), str(tmp_path / "api")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "Warn" not in done.stderr, done.stderr
    page = (tmp_path / "api" / "llkl_db" / "dataset.html").read_text()
    for anchor in (
        "Dataset",
        "Dataset.nearest",
        "Dataset.kl",
        "Dataset.kl_matrix",
        "Dataset.to_polars",
        "Neighbours",
        "Neighbours.to_pandas",
        "PairKL",
        "PairKL.to_polars",
        "open",
    ):
        assert f'id="{anchor}"' in page, anchor
    assert 'id="entry_map"' in (tmp_path / "api" / "llkl_db" / "analysis.html").read_text()
    assert (tmp_path / "api" / "index.html").is_file() and (tmp_path / "api" / "llkl_db.html").is_file()


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return llkl_db.open(write_dataset(tmp_path_factory.mktemp("api"), synthetic_loglik(6, 50)))


def test_repr_and_polars_and_pandas(ds, monkeypatch):
    assert repr(ds).startswith("Dataset(6 entries, 6 models, text set 'test-texts' (N=50), version 1.0.0")
    near = ds.nearest("org/model-000", k=3)
    text = repr(near)
    assert text.startswith("Neighbours of 'org/model-000@main' (3 nearest") and "±" in text and near.scale in text
    pair = ds.kl("org/model-000", "org/model-001")
    assert repr(pair).startswith("PairKL('org/model-000@main' vs 'org/model-001@main': ") and "bits/byte" in repr(pair)
    assert isinstance(ds.to_polars(), pl.DataFrame) and ds.to_polars().height == 6
    assert near.to_polars().equals(near.table)
    assert pair.to_polars().row(0, named=True)["kl_bpb"] == pair.kl_bpb
    pd = pytest.importorskip("pandas")
    assert (
        isinstance(near.to_pandas(), pd.DataFrame)
        and list(near.to_pandas()["entry_id"]) == near.table["entry_id"].to_list()
    )
    assert pair.to_pandas()["level"][0] == pair.level and len(ds.to_pandas()) == 6
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match="to_pandas\\(\\) needs pandas: pip install pandas"):
        near.to_pandas()
