"""Optional tables of a dataset (``tables/NAME.parquet``, schema v1): written atomically, read
with Polars. ``weight_distances`` holds squared parameter distances between checkpoints."""

from __future__ import annotations

from pathlib import Path

from llkl_db.errors import LlklError
from llkl_db.schema import PARQUET_VERSION_KEY, SCHEMA_VERSION, field_names

from .atomic import atomic_path
from .folder import TABLES_DIR, DatasetFolder

WEIGHT_DISTANCES = "weight_distances"
WEIGHT_KEY = ("model_id", "revision_a", "revision_b")
TABLE_KEYS = {WEIGHT_DISTANCES: WEIGHT_KEY, "model_scores": ("model_id", "score")}


def table_path(root: Path, name: str) -> Path:
    """Where table ``name`` of the dataset at ``root`` lives."""
    return DatasetFolder(root).table_path(name)


def write_table(path: Path, name: str, rows) -> None:
    """Write rows (a Polars DataFrame or a list of dicts) as table ``name``, atomically, zstd."""
    import polars as pl
    import pyarrow.parquet as pq

    from llkl_db.schema import arrow_schema

    frame = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows)
    schema = arrow_schema(name)
    for column in schema.names:
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None).alias(column))
    table = frame.select(schema.names).to_arrow().cast(schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_table(path: Path, name: str):
    """Read table ``name`` from ``path`` (a Polars DataFrame), checking its version and columns."""
    from .parquet import read_footer, read_frame

    version = read_footer(path).metadata.get(PARQUET_VERSION_KEY.decode())
    frame = read_frame(path)
    if version != str(SCHEMA_VERSION):
        raise LlklError(f"{path}: schema version {version or 'missing'}, this llkl-db reads version {SCHEMA_VERSION}")
    missing = [c for c in field_names(name) if c not in frame.columns]
    if missing:
        raise LlklError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame


def read_weight_distances(root: Path):
    """The dataset's weight-distance table, or None when it has none."""
    path = table_path(root, WEIGHT_DISTANCES)
    return read_table(path, WEIGHT_DISTANCES) if path.is_file() else None


def upsert_weight_distances(root: Path, rows) -> Path:
    """Add rows to the weight-distance table of ``root``, replacing rows with the same
    (model_id, revision_a, revision_b); returns the table's path."""
    import polars as pl

    path = table_path(root, WEIGHT_DISTANCES)
    new = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows)
    old = read_table(path, WEIGHT_DISTANCES) if path.is_file() else None
    if old is not None and old.height:
        new = pl.concat([old.select(new.columns), new], how="vertical_relaxed").unique(
            subset=list(WEIGHT_KEY), keep="last", maintain_order=True
        )
    write_table(path, WEIGHT_DISTANCES, new.sort("model_id", "step_a", "step_b"))
    return path


def merge_tables(sources, out) -> list[str]:
    """Carry the optional tables of the folders ``sources`` into the folder ``out`` (all
    :class:`~llkl_db.io.folder.DatasetFolder`): a table held by one source is copied; rows of
    several are joined, a later source's row replacing an earlier one with the same key.
    Returns the table file names written."""
    import shutil

    import polars as pl

    from .atomic import atomic_path

    names = sorted({p.name for folder in sources for p in folder.table_files()})
    for name in names:
        files = [p for folder in sources for p in folder.table_files() if p.name == name]
        stem = Path(name).stem
        target = out.table_path(stem) if stem in TABLE_KEYS else out.root / TABLES_DIR / name
        if len(files) == 1 or stem not in TABLE_KEYS:
            with atomic_path(target) as tmp:
                shutil.copyfile(files[-1], tmp)
            continue
        frame = pl.concat([read_table(f, stem) for f in files], how="diagonal_relaxed")
        key = TABLE_KEYS[stem]
        frame = frame.unique(subset=list(key), keep="last", maintain_order=True)
        write_table(target, stem, frame)
    return names
