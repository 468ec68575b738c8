"""The language-neutral schema of llkl-db (``v1.json``), exposed as Arrow schemas.

The JSON file is the contract; this module only turns it into ``pyarrow`` types so that
writers and validators never spell a field twice.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_VERSION = 1
METADATA_FILE = "llkl-db.json"
PARQUET_VERSION_KEY = b"llkl_db.schema_version"


@cache
def spec() -> dict[str, Any]:
    """The parsed ``v1.json``."""
    return json.loads(resources.files(__package__).joinpath("v1.json").read_text("utf-8"))


def field_names(table: str) -> list[str]:
    """Column names of ``table`` ('texts' or 'vectors'), in schema order."""
    return [f["name"] for f in spec()["tables"][table]["fields"]]


def _arrow_type(type_name: str, n_texts: int | None):
    import pyarrow as pa

    simple = {
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "string": pa.string(),
        "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
    }
    if type_name in simple:
        return simple[type_name]
    if type_name.startswith("list<"):
        return pa.list_(simple[type_name[len("list<") : type_name.index(">")]])
    if type_name.startswith("fixed_size_list<"):
        if n_texts is None:
            raise ValueError("n_texts is needed for a fixed-size list column")
        inner = type_name[len("fixed_size_list<") : type_name.index(">")]
        return pa.list_(simple.get(inner) or getattr(pa, inner)(), n_texts)
    raise ValueError(f"unknown type in schema: {type_name}")


def arrow_schema(table: str, n_texts: int | None = None):
    """The ``pyarrow.Schema`` of ``table``, with the schema version in its metadata."""
    import pyarrow as pa

    fields = [
        pa.field(f["name"], _arrow_type(f["type"], n_texts), nullable=f["nullable"])
        for f in spec()["tables"][table]["fields"]
    ]
    return pa.schema(fields, metadata={PARQUET_VERSION_KEY: str(SCHEMA_VERSION).encode()})
