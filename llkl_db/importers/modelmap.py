"""Import the 2025 paper's published vectors (shimo-lab/modelmap, ``1000models/data``) as schema v1.

- ``raw_log-likelihood_1018.pkl``: a dict from model name to a float array of 10,000 (nats);
- ``model-data-1018.pkl``: a list of dicts with ``model_name``, ``model_type``, ``model_size``
  (billions of parameters), ``created_at``, ``downloads``, ``tags``, ``log-likelihood-10k``,
  ``mean_logp`` and the ``score_v1_*`` benchmark scores (Open LLM Leaderboard v1);
- ``modeldata_1018.pkl`` (the later release, read by the resampling-texts code of arXiv
  2505.15428): per-model records with the vector under ``raw_log-likelihood-10k``, as a list of
  dicts with ``model_name`` or a dict from model name to record.

Both are loaded with :func:`llkl_db.importers.safe_pickle.load_pickle`. The vectors go on the
pile-10k text set (the published ``texts-10k-pile.jsonl``, or a text-set Parquet). The 2025
code encoded each text with the tokenizer's default special tokens and dropped the first
position's score, so bos_policy depends on the tokenizer: 'bos' where it prepends BOS, else
'skip-first', decided by model type (:mod:`llkl_db.bos`). They were scored in float16 (dtype
float16) at a revision nobody recorded (revision ``unknown``). Scores go into
``tables/model_scores.parquet``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llkl_db.bos import bos_policy_for
from llkl_db.errors import LlklError

RAW_FILE = "raw_log-likelihood_1018.pkl"
META_FILE = "model-data-1018.pkl"
TEXTS_FILE = "texts-10k-pile.jsonl"
MODELDATA_FILE = "modeldata_1018.pkl"
MODELDATA_KEY = "raw_log-likelihood-10k"
TEXT_SET = "pile-10k"
REVISION = "unknown"  # the 2025 code did not record the revisions it scored
DTYPE = "float16"
CONTRIBUTOR = "shimo-lab/modelmap (Oyama et al., ACL 2025, arXiv:2502.16173)"
SCORE_SOURCE = "Open LLM Leaderboard v1, via model-data-1018.pkl of shimo-lab/modelmap (arXiv:2502.16173)"
ENTRIES_PER_FILE = 256
KIND = "models"


@dataclass(frozen=True)
class ImportSummary:
    """What an import wrote."""

    out: Path
    n_entries: int
    n_scores: int
    text_set: str
    dataset_version: str
    skipped: list[str]
    bos_policies: dict[str, int] | None = None  # entries per bos_policy
    notes: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "n_entries": self.n_entries,
            "n_scores": self.n_scores,
            "text_set": self.text_set,
            "dataset_version": self.dataset_version,
            "skipped": self.skipped,
            "bos_policies": self.bos_policies or {},
            "notes": self.notes or [],
        }


def _find(folder: Path, name: str) -> Path | None:
    direct = folder / name
    if direct.is_file():
        return direct
    found = sorted(folder.rglob(name))
    return found[0] if found else None


def read_raw(path: Path) -> dict[str, np.ndarray]:
    """``raw_log-likelihood_1018.pkl``: model name -> float64 vector."""
    from .safe_pickle import load_pickle

    data = load_pickle(path)
    if not isinstance(data, dict):
        raise LlklError(f"{path}: expected a dict from model name to an array, got {type(data).__name__}")
    out = {}
    for name, vector in data.items():
        if not isinstance(name, str):
            raise LlklError(f"{path}: model names must be strings, got {type(name).__name__}")
        out[name] = _vector(vector, f"{path}: {name}")
    return out


def read_model_data(path: Path) -> list[dict[str, Any]]:
    """``model-data-1018.pkl``: one dict per model, with ``model_name`` required."""
    from .safe_pickle import load_pickle

    data = load_pickle(path)
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise LlklError(f"{path}: expected a list of dicts (one per model)")
    seen: dict[str, int] = {}
    for i, item in enumerate(data):
        name = item.get("model_name")
        if not isinstance(name, str):
            raise LlklError(f"{path}: item {i} has no string 'model_name'")
        if name in seen:
            # One entry id per model name: keeping one of them would silently drop the other.
            raise LlklError(f"{path}: model_name {name!r} appears twice (items {seen[name]} and {i})")
        seen[name] = i
    return data


def read_modeldata(path: Path) -> dict[str, dict[str, Any]]:
    """``modeldata_1018.pkl``: model name -> record with the vector under ``raw_log-likelihood-10k``;
    the file is a list of records with ``model_name`` or a dict from model name to record."""
    from .safe_pickle import load_pickle

    data = load_pickle(path)
    if isinstance(data, dict) and all(isinstance(k, str) and isinstance(v, dict) for k, v in data.items()):
        records = {name: {**item, "model_name": name} for name, item in data.items()}
    elif isinstance(data, list) and all(isinstance(d, dict) and isinstance(d.get("model_name"), str) for d in data):
        records = {item["model_name"]: item for item in data}
    else:
        raise LlklError(
            f"{path}: expected a list of per-model dicts with 'model_name', or a dict from model name to dict"
        )
    for name, item in records.items():
        if MODELDATA_KEY not in item:
            raise LlklError(f"{path}: {name} has no {MODELDATA_KEY!r}")
    return records


def _vector(value: Any, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise LlklError(f"{where}: not a numeric vector") from None
    if arr.ndim != 1:
        raise LlklError(f"{where}: expected a 1-d vector, got shape {arr.shape}")
    return arr


INT64_MAX = 2**63 - 1


def _number(value: Any, where: str) -> float | None:
    """A metadata number as a float (None when not a number); a value beyond float64 is an error."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        return float(value)
    except OverflowError:
        raise LlklError(f"{where}: {str(value)[:20]}... is too large for a float64") from None


def _n_params(size: Any, where: str = "model_size") -> int | None:
    """model_size is in billions of parameters; missing, zero or negative sizes give None, an
    infinite size or one beyond int64 parameters is an error (not a silent None or overflow)."""
    number = _number(size, where)
    if number is None or (math.isfinite(number) and number <= 0) or math.isnan(number):
        return None
    if not math.isfinite(number) or number * 1e9 > INT64_MAX:
        raise LlklError(f"{where}: model_size {number!r} billion parameters does not fit an int64 parameter count")
    return int(round(number * 1e9))


def base_model_of(tags: Any) -> str | None:
    """The parent of a fine-tune from the Hub tags ('base_model:finetune:X', else 'base_model:X')."""
    if not isinstance(tags, (list, tuple)):
        return None
    plain = None
    for tag in tags:
        if not isinstance(tag, str) or not tag.startswith("base_model:"):
            continue
        rest = tag[len("base_model:") :]
        if rest.startswith("finetune:"):
            return rest[len("finetune:") :]
        if ":" not in rest and plain is None:
            plain = rest
    return plain


def score_rows(model_data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the model_scores table: every ``score_v1_*`` key and ``downloads``."""
    rows = []
    for item in model_data:
        for key, value in item.items():
            if not (key.startswith("score_v1_") or key == "downloads"):
                continue
            number = _number(value, f"{item['model_name']}: {key}")
            if number is not None and not math.isfinite(number):
                number = None
            source = (
                SCORE_SOURCE
                if key.startswith("score_v1_")
                else "Hugging Face Hub download count, via model-data-1018.pkl"
            )
            rows.append({"model_id": item["model_name"], "score": key, "value": number, "source": source})
    return rows


def _text_set(folder: Path, texts: Path | None, staging: Path):
    """The pile-10k text set as a TextSet: from ``texts`` (jsonl or Parquet) or the jsonl in ``folder``."""
    from llkl_db.textsets import load_text_set

    source = texts or _find(folder, TEXTS_FILE)
    if source is None:
        raise LlklError(
            f"{folder}: no {TEXTS_FILE} here; name the 2025 texts jsonl or a pile-10k text-set Parquet (texts)"
        )
    source = Path(source)
    if source.suffix == ".parquet":
        return load_text_set(source)
    from llkl_db.textsets.modelmap import import_modelmap as import_texts

    target = staging / f"{TEXT_SET}.parquet"
    import_texts(source, target, TEXT_SET)
    return load_text_set(target)


def _write_entries(path: Path, rows: list[dict[str, Any]], matrix: np.ndarray) -> None:
    """Write entries with the vectors as one Arrow buffer (10,000 floats per row: no Python lists)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llkl_db.io.atomic import atomic_path
    from llkl_db.schema import arrow_schema

    n = matrix.shape[1]
    schema = arrow_schema("vectors", n)
    columns = []
    for field in schema:
        if field.name == "loglik":
            flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).ravel(), type=pa.float32())
            columns.append(pa.FixedSizeListArray.from_arrays(flat, n))
        elif field.name == "n_tokens":
            columns.append(pa.nulls(len(rows), type=field.type))
        else:
            columns.append(pa.array([r.get(field.name) for r in rows], type=field.type))
    table = pa.Table.from_arrays(columns, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def import_modelmap(
    folder: str | Path,
    out: str | Path,
    texts: str | Path | None = None,
    dataset_version: str | None = None,
    overwrite: bool = False,
) -> ImportSummary:
    """Convert the 2025 paper's files in ``folder`` into the dataset ``out`` (created or extended).

    Vectors come from ``raw_log-likelihood_1018.pkl`` when present, else from the
    ``log-likelihood-10k`` of ``model-data-1018.pkl``; metadata (model_type, size, base model
    from the tags) and scores from ``model-data-1018.pkl`` when present.
    """
    from llkl_db.io.folder import DatasetFolder
    from llkl_db.io.scores import write_scores
    from llkl_db.io.vectors import entry_id
    from llkl_db.merge import merge

    folder, out = Path(folder), Path(out)
    DatasetFolder(out).check_writable(overwrite)
    if not folder.is_dir():
        raise LlklError(f"{folder}: no such folder")
    raw_path, meta_path = _find(folder, RAW_FILE), _find(folder, META_FILE)
    modeldata_path = _find(folder, MODELDATA_FILE)
    if raw_path is None and meta_path is None and modeldata_path is None:
        raise LlklError(f"{folder}: none of {RAW_FILE}, {META_FILE}, {MODELDATA_FILE} found")
    vectors = read_raw(raw_path) if raw_path else {}
    model_data = read_model_data(meta_path) if meta_path else []
    meta_by_name = {item["model_name"]: item for item in model_data}
    if not vectors:
        for name, item in meta_by_name.items():
            if "log-likelihood-10k" in item:
                vectors[name] = _vector(item["log-likelihood-10k"], f"{meta_path}: {name}")
    if modeldata_path is not None:
        for name, item in read_modeldata(modeldata_path).items():
            meta_by_name.setdefault(name, item)
            if name not in vectors:
                vectors[name] = _vector(item[MODELDATA_KEY], f"{modeldata_path}: {name}")
    vector_source = raw_path or meta_path or modeldata_path
    if not vectors:
        raise LlklError(f"{folder}: no log-likelihood vectors found")

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    try:
        text_set = _text_set(folder, Path(texts) if texts else None, staging)
        n = len(text_set.texts)
        names = sorted(vectors)
        skipped = []
        unknown_types: dict[str, int] = {}
        rows, kept = [], []
        for name in names:
            vector = vectors[name]
            if vector.shape != (n,):
                raise LlklError(
                    f"{vector_source}: {name} has {vector.size} values, the text set {text_set.name} has {n} texts"
                )
            if not np.isfinite(vector).all():
                skipped.append(f"{name}: non-finite values")
                continue
            item = meta_by_name.get(name, {})
            model_type = item.get("model_type") if isinstance(item.get("model_type"), str) else None
            decision = bos_policy_for(model_type)
            if not decision.known:
                unknown_types[str(model_type)] = unknown_types.get(str(model_type), 0) + 1
            rows.append(
                {
                    "entry_id": entry_id(name, REVISION),
                    "model_id": name,
                    "revision": REVISION,
                    "model_type": model_type,
                    "n_params": _n_params(item.get("model_size"), f"{meta_path}: {name}"),
                    "base_model": base_model_of(item.get("tags")),
                    "text_set": text_set.name,
                    "text_set_sha256": text_set.sha256,
                    "bos_policy": decision.policy,
                    "dtype": DTYPE,
                    "tokenizer": name,
                    "contributor": CONTRIBUTOR,
                }
            )
            kept.append(vector)
        if not rows:
            raise LlklError(f"{folder}: no importable vectors ({len(skipped)} skipped)")
        matrix = np.stack(kept)
        build = DatasetFolder(staging / "build")
        build.add_text_set(text_set)
        for start in range(0, len(rows), ENTRIES_PER_FILE):
            part = build.vector_path(KIND, f"modelmap-1018-{start // ENTRIES_PER_FILE:03d}")
            _write_entries(part, rows[start : start + ENTRIES_PER_FILE], matrix[start : start + ENTRIES_PER_FILE])
        try:
            rows_of_scores = score_rows(model_data)
        except LlklError as exc:
            raise LlklError(f"{meta_path}: {exc}") from None
        scores = [r for r in rows_of_scores if r["model_id"] in set(names)]
        if scores:
            write_scores(build.root, scores)  # merge carries the table, replacing rows of the same key
        metadata = merge([build.root], out, dataset_version=dataset_version, overwrite=overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    policies: dict[str, int] = {}
    for row in rows:
        policies[row["bos_policy"]] = policies.get(row["bos_policy"], 0) + 1
    notes = [
        f"{count} model(s) of type {name!r} (not in bos_by_model_type.json): bos_policy skip-first assumed"
        for name, count in sorted(unknown_types.items())
    ]
    return ImportSummary(
        out, len(rows), len(scores), metadata.text_set, metadata.dataset_version, skipped, policies, notes
    )
