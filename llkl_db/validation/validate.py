"""Checks of a shard (a build output: texts/ and vectors/) or a dataset folder (with llkl-db.json).

Every check that fails becomes a :class:`Problem` naming the file, the entry and the reason;
nothing stops at the first failure, so a contributor sees everything to fix at once.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llkl_db.errors import LlklError
from llkl_db.identifiers import check_identifier
from llkl_db.io.folder import DatasetFolder
from llkl_db.schema import spec
from llkl_db.textsets import TextSet

from .report import ValidationReport

BOS_POLICIES = ("bos", "eos", "skip-first")
LN2 = math.log(2.0)


@dataclass(frozen=True)
class Bounds:
    """Plausible ranges. A log-likelihood is at most 0 (``max_loglik`` allows float rounding);
    a real model's mean bits per byte over a text set lies in [min_mean_bpb, max_mean_bpb]
    (uniform over 262,144 tokens of one byte each is 18 bits/byte); no single text costs more
    than ``max_text_bpb``; a token covers at most ``max_bytes_per_token`` bytes on average and a
    text of n bytes has at most n + ``token_slack`` tokens (byte fallback).

    Those bounds are for a model's output (``layer`` null). A logit-lens layer (an early hidden
    state through the final norm and unembedding) is not a trained predictor and can be far worse
    than uniform: the embedded dataset's layer 0 of gemma-3-270m costs 177 bits/byte on average
    and 417 on one text. Layers get their own, wider upper bounds (``max_layer_mean_bpb``,
    ``max_layer_text_bpb``); the positive-loglik, finite-value and lower bounds apply to all."""

    max_loglik: float = 1e-3
    min_mean_bpb: float = 0.02
    max_mean_bpb: float = 24.0
    max_text_bpb: float = 64.0
    max_layer_mean_bpb: float = 2048.0
    max_layer_text_bpb: float = 8192.0
    max_bytes_per_token: float = 32.0
    token_slack: int = 1


BOUNDS = Bounds()
REQUIRED = [f["name"] for f in spec()["tables"]["vectors"]["fields"] if not f["nullable"]]


def validate(
    path: str | os.PathLike,
    against: str | os.PathLike | None = None,
    revision: str | None = None,
    bounds: Bounds = BOUNDS,
    keep_vectors: bool = False,
) -> ValidationReport:
    """Validate the shard or dataset folder ``path``; with ``against`` (a dataset source) also
    check that its text set matches and its entry ids are new there. ``keep_vectors`` keeps the
    vectors in the report for checks that re-score them (``llkl_db.builders.recompute``)."""
    folder = DatasetFolder(path)
    report = ValidationReport(path=folder.root)
    if not folder.root.is_dir():
        report.add(folder.root, "no such folder (a shard or dataset is a folder with texts/ and vectors/)")
        return report
    texts = _check_texts(folder, report)
    if texts is None:
        return report
    _check_metadata(folder, report, texts)
    if keep_vectors:
        _check_memory(folder, len(texts.texts))
    matrices = _check_vectors(folder, report, texts, bounds, keep_vectors)
    _check_index(folder, report)
    _check_scores(folder, report)
    if against is not None:
        _check_against(report, against, revision)
    report.texts = texts
    if keep_vectors:
        report.vectors = matrices
    return report


def _check_texts(folder: DatasetFolder, report: ValidationReport) -> TextSet | None:
    from llkl_db.io.texts import read_texts
    from llkl_db.textsets import text_set_of

    try:
        # Not folder.text_set, which also refuses a length other than the metadata's n_texts:
        # here that mismatch is reported on llkl-db.json, beside the other metadata checks.
        path = folder.text_set_file()
        frame = read_texts(path)
    except LlklError as exc:
        report.add(folder.texts_dir, str(exc).removeprefix(f"{folder.texts_dir}: "))
        return None
    texts = text_set_of(frame, path)
    if not np.array_equal(frame["n_bytes"].to_numpy(), texts.n_bytes):
        report.add(texts.path, "n_bytes does not match the UTF-8 length of the texts")
    report.text_set, report.text_set_sha256, report.n_texts = texts.name, texts.sha256, len(texts)
    return texts


def _check_metadata(folder: DatasetFolder, report: ValidationReport, texts: TextSet) -> None:
    path = folder.metadata_path
    if not path.is_file():
        report.notes.append(f"no {path.name}: validated as a shard (build output)")
        return
    try:
        meta = folder.metadata
    except LlklError as exc:
        report.add(path, str(exc).removeprefix(f"{path}: "))
        return
    if meta.text_set != texts.name or meta.text_set_sha256 != texts.sha256:
        report.add(
            path,
            f"text set {meta.text_set} (sha256 {meta.text_set_sha256[:12]}) differs from {texts.path.name} (sha256 {texts.sha256[:12]})",
        )
    if meta.n_texts != len(texts.texts):
        report.add(path, f"n_texts {meta.n_texts}, the text set has {len(texts.texts)}")
    mean_bytes = float(texts.n_bytes.mean())
    if not math.isclose(meta.mean_text_bytes, mean_bytes, rel_tol=1e-6):
        report.add(path, f"mean_text_bytes {meta.mean_text_bytes}, the texts give {mean_bytes:.6g}")


VALIDATE_BATCH_ROWS = 256  # entries decoded at once: memory is one batch, whatever the dataset's size


def _check_vectors(
    folder: DatasetFolder, report: ValidationReport, texts: TextSet, bounds: Bounds, keep_vectors: bool
) -> dict[str, np.ndarray]:
    """Per-entry checks, a batch of VALIDATE_BATCH_ROWS entries at a time; returns the vectors by
    entry id when ``keep_vectors`` (for a recompute check), else nothing."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llkl_db.io.parquet import guarded
    from llkl_db.io.vectors import check_file_schema

    try:
        files = folder.vector_files()
    except LlklError as exc:
        report.add(folder.vectors_dir, str(exc))
        return {}
    if not files:
        report.add(folder.vectors_dir, "no vector files (*.parquet)")
        return {}
    n = len(texts.texts)
    seen: dict[str, Path] = {}
    vectors: dict[str, np.ndarray] = {}
    for path in files:
        try:
            columns = check_file_schema(path, n)  # footer first: size limits, then schema
            with guarded(path):
                schema = pl.read_parquet_schema(path)
        except LlklError as exc:
            report.add(path, str(exc).removeprefix(f"{path}: "))
            continue
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            report.add(path, f"missing required column(s) {', '.join(missing)}")
            continue
        if schema["loglik"].inner != pl.Float32:
            report.add(path, f"loglik must hold float32 values (schema v1), found {schema['loglik'].inner}")
        at = 0
        try:
            with guarded(path):  # any failure of the Parquet libraries, a panic included
                pf = pq.ParquetFile(path, pre_buffer=False)
                try:
                    for batch in pf.iter_batches(batch_size=VALIDATE_BATCH_ROWS):
                        df = pl.from_arrow(pa.Table.from_batches([batch]))
                        _check_batch(report, path, df, at, seen, vectors if keep_vectors else None, texts, bounds)
                        at += df.height
                finally:
                    pf.close()
        except LlklError as exc:
            report.add(path, str(exc).removeprefix(f"{path}: "))
            continue
        if at == 0:
            report.add(path, "holds no entries")
    return vectors


def _check_batch(report, path: Path, df, first_row: int, seen: dict, vectors: dict | None, texts, bounds) -> None:
    """The checks of each entry of one batch of a vector file (rows from ``first_row``)."""
    matrix = df["loglik"].to_numpy().astype(np.float64, copy=False)
    tokens = df["n_tokens"] if "n_tokens" in df.columns else None
    meta = df.drop([c for c in ("loglik", "n_tokens") if c in df.columns]).to_dicts()
    for i, row in enumerate(meta):
        eid = row.get("entry_id")
        if eid is None:
            report.add(path, f"row {first_row + i} has no entry_id")
            continue
        if eid in seen:
            report.add(path, f"duplicate entry id (also in {seen[eid]})", eid)
            continue
        seen[eid] = path
        token_row = None if tokens is None or tokens[i] is None else np.asarray(tokens[i].to_numpy(), dtype=np.int64)
        _check_entry(report, path, row, matrix[i], token_row, texts, bounds)
        report.entries.append(eid)
        report.entry_rows.append({**row, "_file": str(path)})
        if vectors is not None:
            vectors[eid] = matrix[i].copy()


def _check_memory(folder: DatasetFolder, n_texts: int) -> None:
    """Kept vectors (for a recompute check) are every entry's float64 vector: refuse, in one
    line, a folder whose vectors would not fit the memory budget."""
    import pyarrow.parquet as pq

    from llkl_db.memory import require_memory

    try:
        files = folder.vector_files()
    except LlklError:
        return  # a folder that cannot be listed: reported by the per-file checks
    rows = 0
    for path in files:
        try:
            rows += pq.read_metadata(path).num_rows
        except Exception:
            continue  # unreadable: reported by the per-file checks
    require_memory(rows * n_texts * 8, f"keeping the vectors of {folder.root} ({rows} entries x {n_texts} texts)")


INDEX_SAMPLE = 32
ORTHONORMAL_TOL = 1e-4


def _check_index(folder: DatasetFolder, report: ValidationReport) -> None:
    """A present index (index/) matches the data: its checks on reading, the digests of its raw
    arrays and of the entry ids (its own list and the vector files' in storage order), n and d,
    an orthonormal basis, and a sample of coordinates and residuals recomputed from the vectors."""
    if not folder.has_index() or not folder.is_dataset():
        return
    from llkl_db.io.index import ARRAYS, array_digest, entry_ids_digest
    from llkl_db.io.rowgroups import RowGroupReader, local_opener
    from llkl_db.math import index as mindex

    where = folder.index_path("index.json")
    try:
        index = folder.read_index()
        entries = folder.entries()
    except LlklError as exc:
        report.add(where, str(exc).removeprefix(f"{where}: "))
        return
    info = index.info
    for name in ARRAYS:
        if array_digest(folder.index_path(name)) != info.arrays[name].get("sha256"):
            report.add(folder.index_path(name), "content does not match its sha256 in index.json")
            return
    if entry_ids_digest(index.entries["entry_id"].to_list()) != info.entry_ids_sha256:
        report.add(folder.index_path("entries.parquet"), "entry ids do not match the digest in index.json")
        return
    if entries.height != info.n_entries or entry_ids_digest(entries["entry_id"].to_list()) != info.entry_ids_sha256:
        report.add(where, "the entry ids of the vector files (in storage order) do not match the index's digest")
        return
    if index.basis.shape[0] != info.d or index.coords.shape[1] != info.d:
        report.add(where, f"d={info.d}, the basis has {index.basis.shape[0]} rows")
        return
    error = mindex.orthonormality_error(index.basis)
    if error > ORTHONORMAL_TOL:
        report.add(folder.index_path("basis.parquet"), f"basis rows not orthonormal (|BB^T - I| = {error:.2e})")
    elif error > info.basis_orthonormality_error * (1 + 1e-6) + 1e-12:  # queries deflate by the recorded one
        report.add(
            where, f"basis_orthonormality_error {info.basis_orthonormality_error:.3e} is below the basis' {error:.3e}"
        )
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(info.n_entries, min(INDEX_SAMPLE, info.n_entries), replace=False))
    reader = RowGroupReader(local_opener(str(folder.root)), info.n_texts)
    names = {0: "outputs", 1: "layers"}
    for pos in sample:
        rel, row = index.files[index.file_of[pos]], int(index.row_of[pos])
        try:
            got, ids, values = reader.read(rel, np.array([row]))
        except LlklError as exc:
            report.add(where, str(exc))
            return
        i = int(np.flatnonzero(got == row)[0])
        eid = entries["entry_id"][int(pos)]
        if ids[i] != eid:
            report.add(where, f"lists {eid} at row {row} of {rel}, which holds {ids[i]}", eid)
            continue
        group = names[int(entries["layer"][int(pos)] is not None)]
        clipped = np.maximum(values[i], np.float32(info.clip_thresholds[group]))
        y, r, total = mindex.project(clipped[None, :], index.mu, index.basis)
        scale = max(float(total[0]), 1e-12)
        if (
            np.linalg.norm(y[0].astype(np.float64) - index.coords[pos]) > 1e-4 * scale
            or abs(r[0] - index.residuals[pos]) > 1e-4 * scale
        ):
            report.add(where, "coordinates or residual do not match the vector (recomputed)", eid)
    reader.close()


def _check_entry(report, path, row, loglik, n_tokens, texts: TextSet, bounds: Bounds) -> None:
    from llkl_db.io.vectors import entry_id

    eid = row["entry_id"]

    def fail(reason: str) -> None:
        report.add(path, reason, eid)

    # ids and names: the allowed characters (llkl_db.identifiers), before anything prints them
    for name in ("entry_id", "model_id", "revision", "variant", "base_model", "contributor"):
        problem = check_identifier(name, row.get(name))
        if problem:
            fail(problem)
    if row.get("model_id") and row.get("revision"):
        expected = entry_id(row["model_id"], row["revision"], row.get("layer"), row.get("variant"))
        if eid != expected:
            fail(f"entry_id does not follow MODEL@REVISION[:L{{layer}}][:{{variant}}] (expected {expected})")
    for name in ("model_id", "revision", "text_set", "text_set_sha256"):
        if not row.get(name):
            fail(f"{name} is missing")
    if row.get("text_set") and (row["text_set"] != texts.name or row.get("text_set_sha256") != texts.sha256):
        fail(
            f"scored on text set {row['text_set']} (sha256 {str(row.get('text_set_sha256'))[:12]}), "
            f"the folder's is {texts.name} (sha256 {texts.sha256[:12]})"
        )
    # provenance
    if row.get("bos_policy") not in BOS_POLICIES:
        fail(f"bos_policy {row.get('bos_policy')!r} is not one of {', '.join(BOS_POLICIES)}")
    if not (row.get("contributor") or row.get("library_versions")):
        fail("no provenance: neither contributor nor library_versions is recorded")
    layer, n_layers = row.get("layer"), row.get("n_layers")
    if layer is not None and (layer < 0 or (n_layers is not None and layer >= n_layers)):
        fail(f"layer {layer} outside 0..{(n_layers or 0) - 1}")
    # values
    bad = ~np.isfinite(loglik)
    if bad.any():
        fail(
            f"{int(bad.sum())} non-finite log-likelihood value(s) (NaN or inf), first at text {int(np.flatnonzero(bad)[0])}"
        )
        return
    if loglik.max() > bounds.max_loglik:
        s = int(loglik.argmax())
        fail(f"positive log-likelihood {loglik[s]:.4g} nats at text {s} (a log-probability is at most 0)")
    bpb = -loglik / (texts.n_bytes * LN2)
    mean_bpb = float(-loglik.sum() / (texts.n_bytes.sum() * LN2))
    lens = layer is not None
    kind = "a logit-lens layer" if lens else "a model output"
    max_mean = bounds.max_layer_mean_bpb if lens else bounds.max_mean_bpb
    max_text = bounds.max_layer_text_bpb if lens else bounds.max_text_bpb
    if not bounds.min_mean_bpb <= mean_bpb <= max_mean:
        fail(
            f"mean {mean_bpb:.4g} bits/byte outside the plausible range for {kind} [{bounds.min_mean_bpb}, {max_mean}]"
        )
    if bpb.max() > max_text:
        s = int(bpb.argmax())
        fail(f"text {s} costs {bpb[s]:.4g} bits/byte (more than {max_text} for {kind}): implausible")
    if n_tokens is not None:
        if n_tokens.shape != texts.n_bytes.shape:
            fail(f"n_tokens has {n_tokens.size} values for {texts.n_bytes.size} texts")
            return
        if (n_tokens < 0).any():
            fail(f"negative token count at text {int(np.flatnonzero(n_tokens < 0)[0])}")
        over = n_tokens > texts.n_bytes + bounds.token_slack
        if over.any():
            s = int(np.flatnonzero(over)[0])
            fail(f"text {s} has {int(n_tokens[s])} tokens for {int(texts.n_bytes[s])} bytes (more tokens than bytes)")
        if row.get("bos_policy") != "skip-first":
            empty = (n_tokens == 0) & (texts.n_bytes > 0)
            if empty.any():
                fail(f"text {int(np.flatnonzero(empty)[0])} has 0 tokens but is not empty")
        total = int(n_tokens.sum())
        if total > 0 and texts.n_bytes.sum() / total > bounds.max_bytes_per_token:
            fail(
                f"{texts.n_bytes.sum() / total:.3g} bytes per token on average: token counts do not fit the byte lengths"
            )


def _check_scores(folder: DatasetFolder, report: ValidationReport) -> None:
    from llkl_db.io.scores import read_scores

    path = folder.table_path("model_scores")
    if not path.is_file():
        return
    try:
        df = read_scores(folder.root)
    except LlklError as exc:
        report.add(path, str(exc).removeprefix(f"{path}: "))
        return
    import polars as pl

    if df.filter(pl.col("model_id").is_null() | pl.col("score").is_null()).height:
        report.add(path, "rows without model_id or score")
    for column in ("model_id", "score"):
        for value in df[column].drop_nulls().unique(maintain_order=True).to_list():
            problem = check_identifier(column, value)
            if problem:
                report.add(path, problem, value if column == "model_id" else None)
    dup = df.filter(pl.struct("model_id", "score").is_duplicated())
    if dup.height:
        row = dup.row(0, named=True)
        report.add(path, f"score {row['score']} of {row['model_id']} appears more than once")
    values = df["value"].drop_nulls().to_numpy()
    if values.size and not np.isfinite(values).all():
        report.add(path, "non-finite score values (use null for a missing score)")


def _check_against(report: ValidationReport, against, revision: str | None) -> None:
    from llkl_db.io.source import resolve_source

    try:
        target = DatasetFolder(resolve_source(against, revision))
        meta = target.metadata
    except LlklError as exc:
        report.add(str(against), f"cannot read the target dataset ({exc})")
        return
    if meta.text_set != report.text_set or meta.text_set_sha256 != report.text_set_sha256:
        report.add(
            str(against),
            f"target dataset is on text set {meta.text_set} (sha256 {meta.text_set_sha256[:12]}), "
            f"this folder on {report.text_set} (sha256 {str(report.text_set_sha256)[:12]})",
        )
        return
    if not target.vector_files():
        return
    try:
        entries = target.entries()
    except LlklError as exc:
        report.add(str(against), f"cannot read the target dataset ({exc})")
        return
    existing = set(entries["entry_id"].to_list())
    same_root = target.root.resolve() == Path(report.path).resolve()
    for row in report.entry_rows:
        if row["entry_id"] in existing and not same_root:
            report.add(row["_file"], f"entry id already in the target dataset {against}", row["entry_id"])
