"""Dataset-level metadata (``llkl-db.json`` at the dataset root)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from llkl_db.errors import BadValueError, LlklError
from llkl_db.schema import METADATA_FILE, SCHEMA_VERSION

from .atomic import write_text_atomic
from .jsonfile import read_json

_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class DatasetMetadata:
    """What a dataset version records once for all its vectors (schema: metadata section)."""

    dataset_version: str
    text_set: str
    text_set_sha256: str
    n_texts: int
    mean_text_bytes: float
    clip_threshold: float | None
    clip_percentile: float = 2.0
    schema_version: int = SCHEMA_VERSION
    # Logit-lens layers live on another range of values (far below a model's output), so
    # they are clipped at the same percentile of their own values.
    layer_clip_threshold: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False) + "\n"


# The method estimates KL and its standard error from the spread over texts: with fewer than
# MIN_TEXTS texts the estimate and its SE mean nothing (one text gives 0 +- 0), so such a
# dataset is refused when it is opened (schema/v1.json, metadata n_texts).
MIN_TEXTS = 10
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A text set's name names its file (texts/<text_set>.parquet): letters, digits, '.', '_', '-'.
_TEXT_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_OPTIONAL = {"clip_percentile", "clip_threshold", "layer_clip_threshold"}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metadata_problem(raw: dict) -> str | None:
    """The first problem of a metadata object against schema/v1.json (metadata section), or None.
    Unknown fields are refused: a misspelt optional field (``clip_treshold``) would otherwise
    silently take its default."""
    known = set(DatasetMetadata.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        return f"unknown field(s) {', '.join(unknown)} (schema v1 defines {', '.join(sorted(known))})"
    missing = sorted(known - set(raw) - _OPTIONAL)
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        return f"schema version {version!r}, this llkl-db reads version {SCHEMA_VERSION}"
    name = raw["text_set"]
    if not isinstance(name, str) or not _TEXT_SET_NAME.match(name) or name in (".", ".."):
        return (
            f"text_set must be a name of 1..128 characters from A-Z a-z 0-9 . _ - "
            f"(not starting with . _ -), got {name!r}"
        )
    sha = raw["text_set_sha256"]
    if not isinstance(sha, str) or not _SHA256.match(sha):
        return f"text_set_sha256 must be 64 lowercase hex digits, got {sha!r}"
    n = raw["n_texts"]
    if not isinstance(n, int) or isinstance(n, bool) or n < MIN_TEXTS:
        return f"n_texts must be an integer of at least {MIN_TEXTS} (the fewest texts the method estimates from), got {n!r}"
    b = raw["mean_text_bytes"]
    if not _is_number(b) or b <= 0:
        return f"mean_text_bytes must be positive and finite (bytes), got {b!r}"
    for field in ("clip_threshold", "layer_clip_threshold"):
        value = raw.get(field)
        if value is not None and (not _is_number(value) or value > 0):
            return f"{field} must be a number <= 0 (finite; a log-likelihood in nats) or null, got {value!r}"
    p = raw.get("clip_percentile", 2.0)
    if not _is_number(p) or not 0 < p < 50:
        return f"clip_percentile must be a finite number in (0, 50), got {p!r}"
    return None


def read_metadata(root: Path) -> DatasetMetadata:
    """Read and check ``llkl-db.json`` against schema/v1.json (every field: type, finite, range;
    NaN and Infinity literals refused; unknown fields refused); any problem is a one-line
    :class:`LlklError` naming the file."""
    path = root / METADATA_FILE
    if not path.is_file():
        raise LlklError(f"{path}: missing dataset metadata file ({METADATA_FILE})")
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise LlklError(f"{path}: expected a JSON object")
    problem = metadata_problem(raw)
    if problem:
        raise LlklError(f"{path}: {problem}")
    check_dataset_version(raw["dataset_version"], str(path))
    fields = dict(raw)
    fields.setdefault("clip_threshold", None)
    return DatasetMetadata(**fields)


def check_dataset_version(version: object, where: str) -> None:
    """Dataset versions are semantic: X.Y.Z."""
    if where == "dataset_version" and not _SEMVER.match(str(version)):
        raise BadValueError("dataset_version", version, "is not X.Y.Z")
    if not _SEMVER.match(str(version)):
        raise LlklError(f"{where}: dataset_version {version!r} is not X.Y.Z")


def write_metadata(root: Path, meta: DatasetMetadata) -> None:
    """Write ``llkl-db.json`` atomically, refusing a version that could not be read back."""
    check_dataset_version(meta.dataset_version, str(root / METADATA_FILE))
    problem = metadata_problem(asdict(meta))
    if problem:
        raise LlklError(f"{root / METADATA_FILE}: {problem}")
    write_text_atomic(root / METADATA_FILE, meta.to_json())
