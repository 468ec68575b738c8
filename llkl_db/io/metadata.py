"""Dataset-level metadata (``llkl-db.json`` at the dataset root)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from llkl_db.errors import BadValueError, LlklError
from llkl_db.schema import METADATA_FILE, SCHEMA_VERSION

from .atomic import write_text_atomic

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
        return json.dumps(asdict(self), indent=2) + "\n"


def read_metadata(root: Path) -> DatasetMetadata:
    """Read and check ``llkl-db.json``; any problem is a one-line :class:`LlklError`."""
    path = root / METADATA_FILE
    if not path.is_file():
        raise LlklError(f"{path}: missing dataset metadata file ({METADATA_FILE})")
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LlklError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise LlklError(f"{path}: expected a JSON object")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise LlklError(f"{path}: schema version {version!r}, this llkl-db reads version {SCHEMA_VERSION}")
    known = set(DatasetMetadata.__dataclass_fields__)
    missing = sorted(known - set(raw) - {"clip_percentile", "clip_threshold", "layer_clip_threshold"})
    if missing:
        raise LlklError(f"{path}: missing field(s) {', '.join(missing)}")
    fields = {k: v for k, v in raw.items() if k in known}
    fields.setdefault("clip_threshold", None)
    meta = DatasetMetadata(**fields)
    for name in ("clip_threshold", "clip_percentile", "layer_clip_threshold"):
        value = getattr(meta, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise LlklError(f"{path}: {name} must be a number, got {value!r}")
    check_dataset_version(meta.dataset_version, str(path))
    if not (isinstance(meta.n_texts, int) and meta.n_texts > 0):
        raise LlklError(f"{path}: n_texts must be a positive integer, got {meta.n_texts!r}")
    if not (isinstance(meta.mean_text_bytes, (int, float)) and meta.mean_text_bytes > 0):
        raise LlklError(f"{path}: mean_text_bytes must be positive, got {meta.mean_text_bytes!r}")
    return meta


def check_dataset_version(version: object, where: str) -> None:
    """Dataset versions are semantic: X.Y.Z."""
    if where == "dataset_version" and not _SEMVER.match(str(version)):
        raise BadValueError("dataset_version", version, "is not X.Y.Z")
    if not _SEMVER.match(str(version)):
        raise LlklError(f"{where}: dataset_version {version!r} is not X.Y.Z")


def write_metadata(root: Path, meta: DatasetMetadata) -> None:
    """Write ``llkl-db.json`` atomically, refusing a version that could not be read back."""
    check_dataset_version(meta.dataset_version, str(root / METADATA_FILE))
    write_text_atomic(root / METADATA_FILE, meta.to_json())
