"""The optional ``model_scores`` table (``tables/model_scores.parquet``): benchmark scores and
other per-model numbers, one row per model and score (schema v1, table model_scores)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llkl_db.errors import LlklError
from llkl_db.schema import field_names

from .atomic import atomic_path

TABLE = "model_scores"


def scores_path(root: Path) -> Path:
    """Where a dataset folder keeps its model_scores table."""
    from .folder import DatasetFolder

    return DatasetFolder(root).table_path(TABLE)


def read_scores(root: Path):
    """The model_scores table of a dataset folder as a Polars DataFrame (empty when absent)."""
    import polars as pl

    path = scores_path(root)
    columns = field_names(TABLE)
    if not path.is_file():
        return pl.DataFrame(
            schema={"model_id": pl.String, "score": pl.String, "value": pl.Float64, "source": pl.String}
        )
    from .parquet import read_frame

    df = read_frame(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise LlklError(f"{path}: missing column(s) {', '.join(missing)}")
    return df.select(columns)


def write_scores(root: Path, rows: Sequence[dict]) -> Path:
    """Write the model_scores table of the folder ``root`` atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llkl_db.schema import arrow_schema

    path = scores_path(root)
    rows = [dict(r) for r in rows]
    rows.sort(key=lambda r: (r["model_id"], r["score"]))
    schema = arrow_schema(TABLE)
    table = pa.table({name: [r.get(name) for r in rows] for name in schema.names}, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path
