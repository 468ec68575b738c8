"""Malformed, huge or strange files are refused in one line naming the file: never a panic, a
hang, a huge allocation or a silently wrong answer."""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import default_rows, make_texts, synthetic_loglik, write_dataset
from typer.testing import CliRunner

import llkl_db
from llkl_db.cli import app
from llkl_db.errors import LlklError
from llkl_db.io.folder import DatasetFolder
from llkl_db.io.metadata import MIN_TEXTS, DatasetMetadata, write_metadata
from llkl_db.io.texts import text_set_sha256
from llkl_db.io.vectors import MAX_LOGLIK, vector_file_limits
from llkl_db.schema import spec
from llkl_db.validation import validate

runner = CliRunner()
N = 20
REPO = Path(__file__).resolve().parent.parent


def _dataset(tmp_path: Path, k: int = 5, n: int = N, **kwargs) -> Path:
    return write_dataset(tmp_path / "ds", synthetic_loglik(k, n), **kwargs)


def _vector_file(root: Path) -> Path:
    return sorted((root / "vectors").rglob("*.parquet"))[0]


def _one_line(excinfo, *needles: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def _cli_error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return lines[0]


# --- 1. a footer claiming 10^8 rows: Polars panics on it -----------------------------------------
def _varint(value: int) -> bytes:
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        if not value:
            return out + bytes([byte])
        out += bytes([byte | 0x80])


def _claim_rows(path: Path, claimed: int) -> None:
    """Patch the footer of a real file so that its row group claims ``claimed`` rows (the
    Thrift compact field 3 of the RowGroup, i64 zigzag varint, is its last ``0x16 <rows>``)."""
    rows = pq.read_metadata(path).num_rows
    data = path.read_bytes()
    length = struct.unpack("<I", data[-8:-4])[0]
    footer = data[-8 - length : -8]
    old = b"\x16" + _varint(2 * rows)
    at = footer.rindex(old)
    footer = footer[:at] + b"\x16" + _varint(2 * claimed) + footer[at + len(old) :]
    path.write_bytes(data[: -8 - length] + footer + struct.pack("<I", len(footer)) + b"PAR1")
    assert pq.read_metadata(path).row_group(0).num_rows == claimed


def _panicking_dataset(root: Path) -> Path:
    write_dataset(root, synthetic_loglik(37, N))
    _claim_rows(_vector_file(root), 10**8)
    return root


def test_polars_panics_on_the_crafted_footer(tmp_path):
    # The premise: reading the file with Polars directly is a PanicException (a BaseException).
    root = _panicking_dataset(tmp_path / "ds")
    with pytest.raises(BaseException) as excinfo:
        pl.read_parquet(_vector_file(root), columns=["entry_id"])
    assert not isinstance(excinfo.value, Exception) or "rows" in str(excinfo.value)


def test_footer_claiming_1e8_rows_is_refused_in_one_line(tmp_path):
    root = _panicking_dataset(tmp_path / "ds")
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(root)
    _one_line(excinfo, str(_vector_file(root)), "100000000")
    report = validate(root)
    assert not report.ok and any("100000000" in str(p) for p in report.problems)
    assert _cli_error(["info", "-d", str(root)]).count(str(_vector_file(root))) == 1


def test_a_panic_while_reading_becomes_one_line(tmp_path, monkeypatch):
    root = _dataset(tmp_path)
    ds = llkl_db.open(root)

    def panic(*args, **kwargs):
        raise pl.exceptions.PanicException("assertion `left == right` failed")

    monkeypatch.setattr(pl, "read_parquet", panic)
    with pytest.raises(LlklError) as excinfo:
        ds.loglik  # noqa: B018 - reads the vectors
    _one_line(excinfo, str(_vector_file(root)), "not a readable Parquet file")
    report = validate(root)
    assert any("left == right" in str(p) for p in report.problems)


def test_review_goes_on_after_a_pull_request_panics(tmp_path, monkeypatch):
    from contrib_helpers import good_dataset
    from test_publish import FakeApi, _pr

    from llkl_db.publish import review

    by_revision = {"refs/pr/1": _panicking_dataset(tmp_path / "pr1"), "refs/pr/2": good_dataset(tmp_path / "pr2")}
    panicking = good_dataset(tmp_path / "pr3")
    by_revision["refs/pr/3"] = panicking
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda **kw: str(by_revision[kw.get("revision")]))
    import llkl_db.validation as validation

    real_validate = validation.validate

    def validate(path, *args, **kwargs):
        if Path(path) == panicking:
            raise pl.exceptions.PanicException("a bug in a library")
        return real_validate(path, *args, **kwargs)

    monkeypatch.setattr(validation, "validate", validate)
    api = FakeApi(discussions=[_pr(1, "Panics"), _pr(3, "Panics too"), _pr(2)])
    results = review("org/name", merge=True, api=api)
    assert [r.num for r in results] == [1, 3, 2]
    assert [r.ok for r in results] == [False, False, True]
    assert any("100000000" in p for p in results[0].problems)
    assert any("PanicException" in p and "a bug in a library" in p for p in results[1].problems)
    assert [m["discussion_num"] for m in api.called("merge_pull_request")] == [2]


# --- 2. sizes from the footer before reading ---------------------------------------------------
def _write_bomb(path: Path, rows: int, n: int, entry_bytes: int = 0) -> None:
    """A vector file of ``rows`` identical entries (zstd: tiny on disk, large decompressed)."""
    from llkl_db.schema import arrow_schema

    schema = arrow_schema("vectors", n)
    batch_rows = min(rows, 100_000)
    sha = DatasetFolder(path.parents[2]).metadata.text_set_sha256
    row = {
        "entry_id": "org/bomb@main" + "x" * entry_bytes,
        "model_id": "org/bomb",
        "revision": "main",
        "text_set": "test-texts",
        "text_set_sha256": sha,
        "bos_policy": "bos",
    }
    columns = {}
    for name in schema.names:
        if name == "loglik":
            values = pa.array(np.full(batch_rows * n, -3.0, dtype=np.float32))
            columns[name] = pa.FixedSizeListArray.from_arrays(values, n)
        else:
            columns[name] = pa.array([row.get(name)] * batch_rows, type=schema.field(name).type)
    table = pa.table(columns, schema=schema)
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for _ in range(rows // batch_rows):
            writer.write_table(table)


def _never_read(monkeypatch, bomb: Path):
    read_parquet, read_table = pl.read_parquet, pq.read_table

    def guard(real):
        def read(source, *args, **kwargs):
            assert Path(source) != bomb, "a column of the bomb was read before its footer was checked"
            return real(source, *args, **kwargs)

        return read

    monkeypatch.setattr(pl, "read_parquet", guard(read_parquet))
    monkeypatch.setattr(pq, "read_table", guard(read_table))


def test_zstd_bomb_of_a_million_rows_is_refused_before_reading(tmp_path, monkeypatch):
    root = _dataset(tmp_path)
    bomb = _vector_file(root)
    _write_bomb(bomb, 1_000_000, N)
    assert bomb.stat().st_size < 2_000_000  # small on disk
    max_rows, _ = vector_file_limits(N)
    assert max_rows < 1_000_000
    _never_read(monkeypatch, bomb)
    start = time.monotonic()
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(root)
    _one_line(excinfo, str(bomb), "1000000 rows", f"limit of {max_rows}")
    report = validate(root)
    assert any("1000000 rows" in str(p) for p in report.problems)
    assert time.monotonic() - start < 10


def test_bomb_of_few_huge_rows_is_refused_by_its_uncompressed_size(tmp_path, monkeypatch):
    root = _dataset(tmp_path)
    bomb = _vector_file(root)
    _write_bomb(bomb, 20, N, entry_bytes=20_000_000)  # 400 MB of entry ids
    assert bomb.stat().st_size < 2_000_000
    _never_read(monkeypatch, bomb)
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(root)
    _one_line(excinfo, str(bomb), "decompresses to", "limit")


def test_bomb_is_refused_with_small_peak_memory(tmp_path):
    root = _dataset(tmp_path)
    _write_bomb(_vector_file(root), 1_000_000, N)
    script = textwrap.dedent(
        f"""
        import resource, llkl_db
        from llkl_db.validation import validate
        from llkl_db.errors import LlklError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report = validate({str(root)!r})
        try:
            llkl_db.open({str(root)!r})
            print("OPENED")
        except LlklError as exc:
            print("REFUSED", exc)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("PEAK_KB", after - before, report.ok)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert "REFUSED" in out.stdout, out.stdout + out.stderr
    grown = int(re.search(r"PEAK_KB (\d+)", out.stdout).group(1))
    assert grown < 100_000, f"peak memory grew by {grown} KB"  # today: gigabytes


def test_texts_must_hold_exactly_n_rows(tmp_path):
    root = _dataset(tmp_path)
    path = root / "texts" / "test-texts.parquet"
    from llkl_db.io.texts import write_texts

    write_texts(path, make_texts(N + 1), ["synthetic"] * (N + 1))
    with pytest.raises(LlklError) as excinfo:
        DatasetFolder(root).text_set  # noqa: B018
    _one_line(excinfo, str(path), f"{N + 1} rows, expected {N}")


# --- 3. only regular files; no silent skipping --------------------------------------------------
def test_fifo_named_parquet_is_refused_without_hanging(tmp_path):
    root = _dataset(tmp_path)
    fifo = root / "vectors" / "test" / "zz-fifo.parquet"
    os.mkfifo(fifo)
    with pytest.raises(LlklError) as excinfo:
        DatasetFolder(root).vector_files()
    _one_line(excinfo, str(fifo), "not a regular file", "FIFO")
    script = f"import llkl_db\nllkl_db.open({str(root)!r}).nearest('org/model-000', k=2)\n"
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    except subprocess.TimeoutExpired:
        pytest.fail("nearest hung on a FIFO")
    assert out.returncode != 0 and "not a regular file" in out.stderr
    assert "FIFO" in _cli_error(["nearest", "org/model-000", "-d", str(root)])


def test_symlink_to_a_regular_file_is_read(tmp_path):
    root = _dataset(tmp_path, files=2)
    target = tmp_path / "elsewhere.parquet"
    link = sorted((root / "vectors").rglob("*.parquet"))[-1]
    link.rename(target)
    link.symlink_to(target)
    assert len(llkl_db.open(root)) == 5
    link.unlink()
    link.symlink_to(tmp_path / "missing.parquet")
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(root)
    _one_line(excinfo, str(link), "missing")


def test_unreadable_subfolder_is_an_error_not_a_silent_skip(tmp_path, monkeypatch):
    root = _dataset(tmp_path)
    locked = root / "vectors" / "locked"
    write_dataset(tmp_path / "other", synthetic_loglik(2, N), rows=default_rows(2, "org/locked"))
    locked.mkdir()
    (locked / "part-000.parquet").write_bytes(_vector_file(tmp_path / "other").read_bytes())
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(root)
    _one_line(excinfo, str(locked), "Permission denied")
    report = validate(root)
    assert not report.ok and any("Permission denied" in str(p) for p in report.problems)


# --- 4. llkl-db.json checked field by field ------------------------------------------------------
def _set_field(root: Path, name: str, literal: str) -> None:
    """Write ``literal`` (JSON text, NaN allowed) as the value of field ``name``."""
    path = root / "llkl-db.json"
    raw = json.loads(path.read_text())
    raw[name] = "@@VALUE@@"
    path.write_text(json.dumps(raw).replace('"@@VALUE@@"', literal))


BAD_FIELDS = [
    ("clip_threshold", "NaN", "not valid JSON"),
    ("clip_threshold", "Infinity", "not valid JSON"),
    ("clip_threshold", "-Infinity", "not valid JSON"),
    ("clip_threshold", "5.0", "clip_threshold must be a number <= 0"),
    ("clip_threshold", "true", "clip_threshold must be a number <= 0"),
    ("layer_clip_threshold", "0.5", "layer_clip_threshold must be a number <= 0"),
    ("mean_text_bytes", "NaN", "not valid JSON"),
    ("mean_text_bytes", "1e999", "mean_text_bytes must be positive and finite"),
    ("mean_text_bytes", "0", "mean_text_bytes must be positive"),
    ("mean_text_bytes", '"12"', "mean_text_bytes must be positive"),
    ("clip_percentile", "0", "clip_percentile must be a finite number in (0, 50)"),
    ("clip_percentile", "50", "clip_percentile must be a finite number in (0, 50)"),
    ("clip_percentile", "null", "clip_percentile must be a finite number in (0, 50)"),
    ("text_set", "12", "text_set must be a name"),
    ("text_set", '""', "text_set must be a name"),
    ("text_set", '"../etc"', "text_set must be a name"),
    ("text_set_sha256", '"abc123"', "text_set_sha256 must be 64 lowercase hex digits"),
    ("text_set_sha256", "7", "text_set_sha256 must be 64 lowercase hex digits"),
    ("n_texts", "20.0", "n_texts must be an integer"),
    ("n_texts", "true", "n_texts must be an integer"),
    ("n_texts", "-1", "n_texts must be an integer"),
    ("schema_version", "true", "schema version"),
    ("clip_treshold", "-300", "unknown field(s) clip_treshold"),
]


@pytest.mark.parametrize(("field", "literal", "reason"), BAD_FIELDS, ids=[f"{f}={v}" for f, v, _ in BAD_FIELDS])
def test_bad_metadata_value_is_refused_on_open(tmp_path, field, literal, reason):
    root = _dataset(tmp_path)
    _set_field(root, field, literal)
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(root)
    _one_line(excinfo, str(root / "llkl-db.json"), reason)


@pytest.mark.parametrize(("field", "literal"), [("clip_threshold", "NaN"), ("text_set", "12"), ("clip_threshold", "3")])
def test_bad_metadata_in_the_cli_is_one_error_line(tmp_path, field, literal):
    root = _dataset(tmp_path)
    _set_field(root, field, literal)
    assert "llkl-db.json" in _cli_error(["nearest", "org/model-000", "-d", str(root)])


def test_metadata_that_could_not_be_read_back_is_not_written(tmp_path):
    meta = DatasetMetadata("1.0.0", "t", "0" * 64, N, float("nan"), None)
    with pytest.raises(LlklError) as excinfo:
        write_metadata(tmp_path, meta)
    _one_line(excinfo, "mean_text_bytes")
    assert not (tmp_path / "llkl-db.json").exists()


# --- 6. too few texts; positive log-likelihoods ---------------------------------------------------
def _raw_dataset(root: Path, loglik: np.ndarray) -> Path:
    """A dataset folder written without the metadata checks (as a foreign writer might)."""
    from llkl_db.io.texts import write_texts
    from llkl_db.io.vectors import write_vectors

    k, n = loglik.shape
    texts = make_texts(n)
    sha = write_texts(root / "texts" / "test-texts.parquet", texts, ["synthetic"] * n)
    rows = default_rows(k)
    for row, vector in zip(rows, loglik, strict=True):
        row.update(text_set="test-texts", text_set_sha256=sha, bos_policy="bos", loglik=vector)
    write_vectors(root / "vectors" / "test" / "part-000.parquet", rows, n)
    meta = DatasetMetadata("1.0.0", "test-texts", sha, n, float(np.mean([len(t) for t in texts])), None)
    (root / "llkl-db.json").write_text(meta.to_json())
    return root


@pytest.mark.parametrize("n", [1, 2, MIN_TEXTS - 1])
def test_too_few_texts_is_refused_on_open(tmp_path, n):
    root = _raw_dataset(tmp_path / "ds", synthetic_loglik(3, n))
    with pytest.raises(LlklError) as excinfo:
        llkl_db.open(root)
    _one_line(excinfo, "llkl-db.json", f"at least {MIN_TEXTS}")
    assert "at least" in _cli_error(["kl", "org/model-000", "org/model-001", "-d", str(root)])


def test_min_texts_is_documented_in_the_schema():
    n_texts = next(f for f in spec()["metadata"]["fields"] if f["name"] == "n_texts")
    assert f"at least {MIN_TEXTS}" in n_texts["description"]


def test_positive_loglik_is_refused_at_read_time(tmp_path):
    loglik = synthetic_loglik(4, N)
    loglik[2, 7] = 5.0
    root = write_dataset(tmp_path / "ds", loglik)
    ds = llkl_db.open(root)
    with pytest.raises(LlklError) as excinfo:
        ds.kl("org/model-000", "org/model-001")
    _one_line(excinfo, str(_vector_file(root)), "org/model-002@main", "text 7", "positive")
    assert "positive" in _cli_error(["nearest", "org/model-000", "-d", str(root)])


def test_queries_and_validate_share_one_loglik_tolerance():
    from llkl_db.validation.validate import BOUNDS

    assert MAX_LOGLIK == BOUNDS.max_loglik  # one tolerance for queries and validate


# --- 5. clip_threshold null; the sha256 rule of the schema ----------------------------------------
def test_null_clip_threshold_is_computed_and_shown(tmp_path):
    root = _dataset(tmp_path)  # clip_threshold None
    ds = llkl_db.open(root)
    info = ds.info()
    assert info["clip_threshold"] is None
    assert info["clip_source_outputs"] == "computed"
    assert info["clip_applied_outputs"] == ds.clip_thresholds["outputs"]
    expected = np.percentile(synthetic_loglik(5, N).astype(np.float64), ds.metadata.clip_percentile)
    assert info["clip_applied_outputs"] == pytest.approx(expected, rel=1e-4)
    out = runner.invoke(app, ["info", "-d", str(root)]).output
    assert "clip_source_outputs" in out and "computed" in out
    recorded = llkl_db.open(write_dataset(tmp_path / "rec", synthetic_loglik(5, N), clip_threshold=-320.0)).info()
    assert recorded["clip_source_outputs"] == "recorded" and recorded["clip_applied_outputs"] == -320.0
    clip = next(f for f in spec()["metadata"]["fields"] if f["name"] == "clip_threshold")
    assert "computed when the dataset is opened" in clip["description"]


def test_a_writer_following_the_schema_text_gets_the_codes_hash():
    rule = spec()["tables"]["texts"]["description"]
    assert "8-byte unsigned little-endian" in rule and "followed by its UTF-8 bytes" in rule

    def schema_hash(texts: list[str]) -> str:
        # Written from the schema's words: the SHA-256 of the concatenation, in text_id order, of
        # each text's UTF-8 byte length as an 8-byte unsigned little-endian integer followed by
        # its UTF-8 bytes; 64 lowercase hex digits.
        blob = b"".join(struct.pack("<Q", len(t.encode("utf-8"))) + t.encode("utf-8") for t in texts)
        return hashlib.sha256(blob).hexdigest()

    for texts in (["ab", "c"], ["a", "bc"], ["héllo", "", "ω" * 300], make_texts(30)):
        assert schema_hash(texts) == text_set_sha256(texts)
    assert schema_hash(["ab", "c"]) != schema_hash(["a", "bc"])
