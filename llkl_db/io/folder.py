"""The one owner of a dataset folder: its layout, metadata, text set, entries, tables and writes.

    llkl-db.json                metadata (a dataset has it; a build output, a "shard", does not)
    README.md, CHANGELOG.md     the dataset card and the changelog
    texts/<text_set>.parquet    the one text set
    vectors/<kind>/*.parquet    entries; kind = models | checkpoints | variants | layers
    tables/<name>.parquet       optional tables (weight_distances, model_scores)
    index/index.json, index/entries.parquet, index/basis.parquet, index/coords.bin,
    index/residuals.bin, index/calibration.json
                                optional search index (llkl_db.io.index): entries, coordinates
    done/, failures.jsonl       build bookkeeping of a shard (never published)

File paths follow the templates of ``schema/v1.json``; everything else in llkl-db reaches a
folder's files through :class:`DatasetFolder`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from llkl_db.errors import LlklError
from llkl_db.schema import METADATA_FILE, spec

from . import swap
from .atomic import write_text_atomic
from .metadata import DatasetMetadata, read_metadata, write_metadata
from .texts import TextSetKey
from .vectors import read_loglik, scan_entries, write_vectors

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from llkl_db.textsets import TextSet

CARD_FILE = "README.md"
CHANGELOG_FILE = "CHANGELOG.md"
TEXTS_DIR = "texts"
VECTORS_DIR = "vectors"
TABLES_DIR = "tables"
INDEX_DIR = "index"
INDEX_FILES = ("index.json", "entries.parquet", "basis.parquet", "coords.bin", "residuals.bin", "calibration.json")
DONE_DIR = "done"
PARTIAL_DIR = "partial"  # partial shards: ``place --save`` writes them, ``build`` completes them
FAILURES_FILE = "failures.jsonl"
KINDS = ("models", "checkpoints", "variants", "layers")
# What a published dataset consists of, and the folders whose remote files mirror the local ones.
PUBLISHED_PATTERNS = [
    METADATA_FILE,
    CARD_FILE,
    CHANGELOG_FILE,
    f"{TEXTS_DIR}/*.parquet",
    f"{TEXTS_DIR}/*.json",
    f"{VECTORS_DIR}/**/*.parquet",
    f"{TABLES_DIR}/*.parquet",
    f"{INDEX_DIR}/*.json",
    f"{INDEX_DIR}/*.parquet",
    f"{INDEX_DIR}/*.bin",
]
MIRRORED_PATTERNS = [f"{VECTORS_DIR}/**", f"{TABLES_DIR}/**", f"{TEXTS_DIR}/**", f"{INDEX_DIR}/**"]
# Compacted vector files hold at most this many entries per Parquet row group: a reader that
# needs a few entries (a re-rank, a remote query) fetches their groups only.
ROWS_PER_GROUP = 64
ROW_GROUP_BYTES = 640 * 1024  # float32 log-likelihoods per row group, about (rows_per_group)


def rows_per_group(n_texts: int) -> int:
    """Rows per row group of a vector file of N texts: 16, 32 or 64 (ROWS_PER_GROUP), about
    ROW_GROUP_BYTES of log-likelihoods, so a candidate costs little to fetch and decode at large N
    while the footer (one entry per row group and column) stays small at small N."""
    rows = 16
    while rows < ROWS_PER_GROUP and 2 * rows * n_texts * 4 <= ROW_GROUP_BYTES:
        rows *= 2
    return rows


def vector_write_options(schema) -> dict:
    """Parquet writer options of vector files: zstd; dictionary encoding for the metadata
    columns only (trying it on the float vectors makes writing 2.7x and reading 2.4x slower);
    byte-stream-split log-likelihoods (12% smaller, decoded 2x faster); no statistics (they
    make the footer, parsed by every cold query, 1.3x larger and slower to read)."""
    lists = {"loglik", "n_tokens"}
    return {
        "compression": "zstd",
        "use_dictionary": [n for n in schema.names if n not in lists],
        "use_byte_stream_split": ["loglik.list.element"],
        "write_statistics": False,
    }


def entry_kind(step: int | None, layer: int | None, variant: str | None) -> str:
    """The folder (and dataset-card config) an entry belongs to."""
    if layer is not None:
        return "layers"
    if variant is not None:
        return "variants"
    if step is not None:
        return "checkpoints"
    return "models"


def entry_file_name(entry_id: str) -> str:
    """A file name for one entry, readable and free of path separators."""
    return entry_id.replace("/", "--").replace(":", "~")


class DatasetFolder:
    """A dataset or build-output folder on disk. Reads are cached; writes are atomic."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"DatasetFolder({str(self.root)!r})"

    # --- layout ------------------------------------------------------------------------------
    @property
    def metadata_path(self) -> Path:
        return self.root / METADATA_FILE

    @property
    def card_path(self) -> Path:
        return self.root / CARD_FILE

    @property
    def changelog_path(self) -> Path:
        return self.root / CHANGELOG_FILE

    @property
    def texts_dir(self) -> Path:
        return self.root / TEXTS_DIR

    @property
    def vectors_dir(self) -> Path:
        return self.root / VECTORS_DIR

    @property
    def done_dir(self) -> Path:
        return self.root / DONE_DIR

    @property
    def partial_dir(self) -> Path:
        return self.root / PARTIAL_DIR

    def partial_path(self, entry_id: str) -> Path:
        """Where ``place --save`` keeps the partial shard of ``entry_id``."""
        return self.partial_dir / (entry_file_name(entry_id) + ".parquet")

    @property
    def failures_path(self) -> Path:
        return self.root / FAILURES_FILE

    @property
    def index_dir(self) -> Path:
        return self.root / INDEX_DIR

    def index_path(self, name: str) -> Path:
        """The path of index file ``name`` (:data:`INDEX_FILES`)."""
        paths = {Path(f["path"]).name: f["path"] for f in spec()["index"]["files"].values()}
        if name not in paths:
            raise ValueError(f"not an index file: {name!r}")
        return self.root / paths[name]

    def has_index(self) -> bool:
        return self.index_path("index.json").is_file()

    def text_set_path(self, name: str) -> Path:
        return self.root / spec()["tables"]["texts"]["path"].format(text_set=name)

    def vector_path(self, kind: str, file: str) -> Path:
        if not kind or "/" in kind or kind.startswith("."):
            raise ValueError(f"not a folder name for a kind of entry: {kind!r}")
        return self.root / spec()["tables"]["vectors"]["path"].format(kind=kind, file=file)

    def entry_path(self, entry_id: str, kind: str) -> Path:
        """Where a build writes one entry: one file per entry, named after its id."""
        return self.vector_path(kind, entry_file_name(entry_id))

    def table_path(self, name: str) -> Path:
        tables = spec()["tables"]
        if name not in tables or name in ("texts", "vectors"):
            raise ValueError(f"unknown table {name!r}")
        return self.root / tables[name]["path"]

    def table_files(self) -> list[Path]:
        """The optional tables present (``tables/*.parquet``)."""
        from .parquet import check_regular

        files = sorted((self.root / TABLES_DIR).glob("*.parquet"))
        for path in files:
            check_regular(path)
        return files

    # --- what is here ------------------------------------------------------------------------
    def is_dataset(self) -> bool:
        """A merged dataset (it has ``llkl-db.json``)."""
        return self.metadata_path.is_file()

    def is_llkl_folder(self) -> bool:
        """A dataset or a build output: a folder llkl-db wrote and may rewrite."""
        if self.is_dataset() or (self.texts_dir.is_dir() and (self.vectors_dir.is_dir() or self.done_dir.is_dir())):
            return True
        # a ``place --save`` folder: partial shards, and only what a build adds beside them
        build_names = {PARTIAL_DIR, TEXTS_DIR, VECTORS_DIR, DONE_DIR, FAILURES_FILE}
        return self.partial_dir.is_dir() and {p.name for p in self.root.iterdir()} <= build_names

    def check_writable(self, overwrite: bool = False) -> None:
        """Refuse to write into a folder that holds someone else's files (unless ``overwrite``)."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise LlklError(f"{root}: exists and is not a folder")
        if overwrite or not root.is_dir() or self.is_llkl_folder() or not any(root.iterdir()):
            return
        raise LlklError(
            f"{root}: not empty and not a llkl-db dataset or build folder; "
            "choose another folder, or overwrite it explicitly"
        )

    # --- reading -----------------------------------------------------------------------------
    @cached_property
    def metadata(self) -> DatasetMetadata:
        """``llkl-db.json``, checked against the schema."""
        return read_metadata(self.root)

    def text_set_file(self) -> Path:
        """The folder's one text set file."""
        files = sorted(self.texts_dir.glob("*.parquet")) if self.texts_dir.is_dir() else []
        if len(files) == 1:
            from .parquet import check_regular

            check_regular(files[0])
        if len(files) != 1:
            raise LlklError(f"{self.texts_dir}: expected exactly one text set (*.parquet), found {len(files)}")
        return files[0]

    @cached_property
    def text_set(self) -> TextSet:
        """The texts of the folder, hashed once. In a dataset whose metadata reads, the file must
        hold exactly its ``n_texts`` rows (checked on the footer, before the texts are read)."""
        from llkl_db.textsets import read_text_set

        expected = None
        if self.is_dataset():
            try:
                expected = self.metadata.n_texts
            except LlklError:
                expected = None  # the metadata's own problem is reported where it is read
        return read_text_set(self.text_set_file(), n_texts=expected)

    @property
    def text_set_key(self) -> TextSetKey:
        """The text set every entry must be on: the recorded one of a dataset, else the file's."""
        if self.is_dataset():
            return TextSetKey(self.metadata.text_set, self.metadata.text_set_sha256)
        return self.text_set.key

    @property
    def n_texts(self) -> int:
        return self.metadata.n_texts if self.is_dataset() else len(self.text_set)

    def vector_files(self) -> list[Path]:
        """The vector files, sorted: regular files only (symlinks followed). A ``*.parquet`` that is
        a FIFO, device or socket, or a subfolder that cannot be listed, is a one-line LlklError
        (:func:`llkl_db.io.parquet.list_files`), so no reader loads part of a dataset silently."""
        from .parquet import list_files

        return list_files(self.vectors_dir) if self.vectors_dir.is_dir() else []

    def entries(self) -> pl.DataFrame:
        """Metadata of every entry (no vectors), with the file each comes from, checked: one text
        set, no duplicate ids, at least one entry."""
        return scan_entries(self.vector_files(), self.n_texts, self.text_set_key, self.root)

    def read_loglik(self, entries: pl.DataFrame) -> np.ndarray:
        """The K x N float32 matrix of ``entries`` (a frame from :meth:`entries`), in row order."""
        return read_loglik(entries, self.n_texts)

    def read_index(self, check_files: bool = True):
        """The search index (:class:`llkl_db.io.index.Index`), checked against this dataset, or
        None when the folder has none."""
        if not self.has_index():
            return None
        from .index import read_index

        return read_index(self, check_files=check_files)

    def retag_index(self, dataset_version: str) -> None:
        """Record a new dataset version in a present index (a release of the same data under a
        new version tag): index.json is replaced, never written through a hard link."""
        if self.has_index():
            from .index import retag_index

            retag_index(self, dataset_version)

    def read_table(self, name: str) -> pl.DataFrame | None:
        """Optional table ``name``, or None when the folder has none."""
        from .tables import read_table

        path = self.table_path(name)
        return read_table(path, name) if path.is_file() else None

    # --- writing (each file atomically) ------------------------------------------------------
    def write_metadata(self, metadata: DatasetMetadata) -> None:
        write_metadata(self.root, metadata)
        self.__dict__.pop("metadata", None)

    def write_card(self, text: str) -> None:
        write_text_atomic(self.card_path, text)

    def write_changelog(self, text: str) -> None:
        write_text_atomic(self.changelog_path, text)

    def add_text_set(self, text_set: TextSet) -> None:
        """Copy ``text_set`` in on first use; refuse a folder that holds another text set."""
        present = sorted(self.texts_dir.glob("*.parquet")) if self.texts_dir.is_dir() else []
        others = [p for p in present if p.stem != text_set.name]
        if others:
            raise LlklError(f"{self.root}: holds vectors of text set {others[0].stem}, not {text_set.name}")
        target = self.text_set_path(text_set.name)
        if target.is_file():
            if self.text_set.sha256 != text_set.sha256:
                raise LlklError(f"{target}: a different text set of the same name")
            return
        from .atomic import atomic_path

        with atomic_path(target) as tmp:
            shutil.copyfile(text_set.path, tmp)
        self.__dict__.pop("text_set", None)

    def write_entries(self, path: Path, rows: Sequence[dict]) -> None:
        """Write entries (dicts keyed by schema field) to one vector file of this folder."""
        write_vectors(path, rows, self.n_texts)

    @contextmanager
    def vector_writer(self, path: Path) -> Iterator:
        """Stream entries into one vector file (atomic, row groups of :func:`rows_per_group`):
        yields ``write(table)`` for Arrow tables of the vector schema, for data larger than memory."""
        import pyarrow.parquet as pq

        from llkl_db.schema import arrow_schema

        from .atomic import atomic_path

        schema = arrow_schema("vectors", self.n_texts)
        with atomic_path(path) as tmp:
            with pq.ParquetWriter(tmp, schema, **vector_write_options(schema)) as writer:
                rows = rows_per_group(self.n_texts)
                yield lambda table: writer.write_table(table.cast(schema), row_group_size=rows)

    def write_table(self, name: str, rows) -> Path:
        from .tables import write_table

        path = self.table_path(name)
        write_table(path, name, rows)
        return path


def open_folder(root: str | os.PathLike) -> DatasetFolder:
    """A folder to read, after finishing or undoing any switch a killed writer left half done."""
    root = Path(root)
    swap.recover(root)
    return DatasetFolder(root)


@contextmanager
def replacing(target: str | os.PathLike, overwrite: bool = False) -> Iterator[DatasetFolder]:
    """Write a new version of the folder ``target``: yields an empty staging folder beside it,
    which replaces ``target`` crash-safely when the block succeeds and is removed when it fails.

    Refuses a non-empty ``target`` that is not a llkl-db folder unless ``overwrite``."""
    target = Path(os.path.abspath(target))
    swap.recover(target)
    DatasetFolder(target).check_writable(overwrite)
    staging = swap.make_staging(target)
    try:
        yield DatasetFolder(staging)
        swap.fault_point("swap:staged")
        swap.swap_in(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
