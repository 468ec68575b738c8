"""A dataset of log-likelihood vectors and the queries users ask of it.

``open`` reads the metadata and the entries (cheap: from ``index/entries.parquet`` when the
dataset has an index); the K x N matrix is read on first use and cached, clipped and centred,
for fast repeated queries. With an index, ``nearest``, ``kl`` and ``vector`` never read the
matrix: they fetch the row groups of the rows they need (locally or by ranged remote reads), so
memory holds the coordinates and one batch of candidate rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from llkl_db import math as llmath
from llkl_db import relations
from llkl_db.bos import bos_note
from llkl_db.errors import BadValueError, LlklError
from llkl_db.io.folder import ROWS_PER_GROUP, DatasetFolder, open_folder
from llkl_db.io.jsonfile import read_json
from llkl_db.io.metadata import DatasetMetadata
from llkl_db.io.source import resolve_source
from llkl_db.io.vectors import FILE_COLUMN
from llkl_db.memory import require_memory
from llkl_db.resolve import Resolved, resolve
from llkl_db.scale import scale_line
from llkl_db.where import where_expr


def open(source: str | os.PathLike | None = None, revision: str | None = None) -> Dataset:  # noqa: A001
    """Open a dataset: a local folder, ``hf://datasets/ORG/NAME[@REV]``, ``ORG/NAME`` (with
    ``revision=``), or None for the dataset embedded in the package."""
    from llkl_db.io.remote import is_remote, open_remote

    if source is not None and is_remote(os.fspath(source)):
        parts = open_remote(os.fspath(source), revision)
        if not isinstance(parts, Path):
            store = _Store(parts.folder, parts.folder.metadata, parts.index.entries, parts.index, parts.reader)
            store.materialize = parts.materialize
            return Dataset(store)
        folder = open_folder(parts)
    else:
        folder = open_folder(resolve_source(source, revision))
    return Dataset(_Store.local(folder))


INDEX_NOTE = "this dataset has no search index: `llkl-db index DIR` builds one (nearest then reads candidates only)"
NOTE_ABOVE_BYTES = 256 << 20  # say how to build an index when the matrix is bigger than this
BATCH_BYTES = 128 << 20  # candidates' row groups fetched at once by an indexed nearest
GROUPS_AT_ONCE = 32  # row groups decoded at once by Dataset.loglik_rows


class _Store:
    """Everything loaded from one dataset folder, shared by all filtered views of it.

    With an ``index`` (:class:`llkl_db.io.index.Index`), rows are fetched through ``reader`` (a
    :class:`llkl_db.io.rowgroups.RowGroupReader`); ``materialize`` makes the vector files local
    before a whole-matrix read (a remote dataset's snapshot download)."""

    def __init__(
        self,
        folder: DatasetFolder,
        metadata: DatasetMetadata,
        entries: pl.DataFrame,
        index=None,
        reader=None,
        materialize=None,
    ) -> None:
        self.folder = folder
        self.metadata = metadata
        self.entries = entries
        self.index = index
        self.reader = reader
        self.materialize = materialize
        if index is not None:
            thr = index.info.clip_thresholds
            table = np.array([thr.get("outputs", np.nan), thr.get("layers", np.nan)], dtype=np.float64)
            self.__dict__["row_thresholds"] = table[self.row_groups]

    @classmethod
    def local(cls, folder: DatasetFolder) -> _Store:
        index = folder.read_index()
        if index is None:
            return cls(folder, folder.metadata, folder.entries())
        from llkl_db.io.rowgroups import RowGroupReader, local_opener

        reader = RowGroupReader(local_opener(str(folder.root)), folder.metadata.n_texts, where=f"{folder.root}/")
        return cls(folder, folder.metadata, index.entries, index=index, reader=reader)

    @property
    def matrix_loaded(self) -> bool:
        return "clipped" in self.__dict__

    @property
    def use_index(self) -> bool:
        return self.index is not None and not self.matrix_loaded

    @cached_property
    def _file_base(self) -> np.ndarray:
        """The position of each index file's first row (index order is storage order)."""
        idx = self.index
        base = np.zeros(len(idx.files), dtype=np.int64)
        first = np.unique(idx.file_of, return_index=True)
        base[first[0]] = first[1] - idx.row_of[first[1]]
        return base

    def fetch_rows(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions, clipped float32 rows) for ``positions`` and the rest of their row groups."""
        idx = self.index
        positions = np.asarray(positions, dtype=np.int64)
        out_pos, out_rows = [], []
        ids = self.entries["entry_id"]
        for f in np.unique(idx.file_of[positions]):
            rel = idx.files[int(f)]
            got, got_ids, values = self.reader.read(rel, idx.row_of[positions[idx.file_of[positions] == f]])
            pos = self._file_base[f] + got
            if pos.size and (pos.max() >= ids.len() or got_ids != ids[pos].to_list()):
                raise LlklError(
                    f"{self.folder.root}/{rel}: does not hold the entries its index lists (changed since); "
                    "rebuild it with `llkl-db index DIR`"
                )
            np.maximum(values, self.row_thresholds[pos, None].astype(np.float32), out=values)
            out_pos.append(pos)
            out_rows.append(values)
        return np.concatenate(out_pos), np.concatenate(out_rows)

    def rows(self, positions: list[int]) -> np.ndarray:
        """Clipped rows at ``positions``, from the matrix when loaded, else fetched."""
        if not self.use_index:
            return self.clipped[positions]
        got, values = self.fetch_rows(np.asarray(positions))
        where = {int(p): i for i, p in enumerate(got)}
        return values[[where[int(p)] for p in positions]]

    @cached_property
    def group_of(self) -> np.ndarray:
        """A row-group label per entry (file, row group): batches of an indexed search count row groups."""
        return self.index.file_of * (1 << 40) + self.index.group_of

    @cached_property
    def tau(self) -> float:
        """The bound's deflation for the index's basis (its orthonormality error as recorded at
        build; validate recomputes it)."""
        from llkl_db.math import index as mindex

        return mindex.tau_for(self.index.info.basis_orthonormality_error)

    @cached_property
    def row_groups(self) -> np.ndarray:
        """0 for a model's output, 1 for a logit-lens layer: each group has its own clip threshold."""
        return self.entries["layer"].is_not_null().to_numpy().astype(np.int8)

    @cached_property
    def row_thresholds(self) -> np.ndarray:
        """The clip threshold of each row (recorded in the metadata, else computed)."""
        return self._clip()[1]

    @cached_property
    def clipped(self) -> np.ndarray:
        """The K x N matrix clipped at the dataset's thresholds (float32; the raw copy is not kept)."""
        return self._clip()[0]

    def _clip(self) -> tuple[np.ndarray, np.ndarray]:
        # Fills both cached properties at once: the raw matrix is clipped in place.
        k, n = self.entries.height, self.metadata.n_texts
        require_memory(k * n * 4, f"reading the whole matrix ({k} entries x {n} texts)")
        if self.materialize is not None:
            self.materialize()
        raw = self.folder.read_loglik(self.entries)
        recorded = {0: self.metadata.clip_threshold, 1: self.metadata.layer_clip_threshold}
        thresholds = llmath.group_thresholds(raw, self.row_groups, recorded, self.metadata.clip_percentile)
        np.maximum(raw, thresholds[:, None].astype(np.float32), out=raw)
        self.__dict__["row_thresholds"] = thresholds
        self.__dict__["clipped"] = raw
        return raw, thresholds

    @cached_property
    def prepared(self) -> llmath.Prepared:
        k, n = self.entries.height, self.metadata.n_texts
        require_memory(2 * k * n * 4, f"centring the whole matrix ({k} entries x {n} texts)")
        return llmath.prepare_clipped(self.clipped)

    @cached_property
    def calibration(self) -> relations.Calibration:
        """Relation classes calibrated on this dataset's labelled pairs (see llkl_db.relations)."""
        if self.use_index:  # the calibration published with the index, else a sample of rows
            published = self.folder.index_path("calibration.json")
            if published.is_file():
                return relations.calibration_from_json(read_json(published), str(published))
            return relations.calibrate_from_rows(self.entries, self.rows, self.metadata.mean_text_bytes)
        return relations.calibrate_from_matrix(self.entries, self.clipped, self.metadata.mean_text_bytes)

    def calibration_of(self, rows: np.ndarray) -> relations.Calibration:
        """The calibration on the labelled pairs among the entries ``rows`` (a filter's): classes
        with too few pairs there fall back to the reference scale, and the description says so."""
        if rows.size == self.entries.height:
            return self.calibration
        key = rows.tobytes()
        cache = self.__dict__.setdefault("_filtered_calibrations", {})
        if key not in cache:
            fetch = self.rows if self.use_index else (lambda positions: self.clipped[np.asarray(positions)])
            cache[key] = relations.calibrate_from_rows(
                self.entries[rows],
                lambda positions: fetch(rows[np.asarray(positions, dtype=np.int64)]),
                self.metadata.mean_text_bytes,
                limit=relations.MAX_PAIRS_PER_CLASS,
                scope=f"the {rows.size} entries the filter keeps",
            )
        return cache[key]


@dataclass(frozen=True)
class PairKL:
    """KL between two entries with standard errors, and where it sits on the scale."""

    a: str
    b: str
    kl_bpb: float
    se_bpb: float
    kl_nats: float
    se_nats: float
    n_texts: int
    level: str
    # With ``bias_margin=True``: a bound on the estimator's bias (llmath.bias_margin_bpb), to add
    # to 2 SE on both sides. None when not asked for.
    bias_bpb: float | None = None
    bias_nats: float | None = None

    def interval_bpb(self, z: float = 2.0) -> tuple[float, float]:
        """KL -+ (z SE + the bias margin when present), bits/byte."""
        half = z * self.se_bpb + (self.bias_bpb or 0.0)
        return self.kl_bpb - half, self.kl_bpb + half

    def interval_nats(self, z: float = 2.0) -> tuple[float, float]:
        """KL -+ (z SE + the bias margin when present), nats/text."""
        half = z * self.se_nats + (self.bias_nats or 0.0)
        return self.kl_nats - half, self.kl_nats + half

    warning: str | None = None  # e.g. the two entries were scored under different bos_policy

    def to_dict(self) -> dict:
        return {**self.__dict__, "se_note": llmath.SE_NOTE}

    def __repr__(self) -> str:
        return (
            f"PairKL({self.a!r} vs {self.b!r}: {self.kl_bpb:.4g} ± {self.se_bpb:.2g} bits/byte, "
            f"{self.kl_nats:.4g} ± {self.se_nats:.2g} nats/text over {self.n_texts} texts, level {self.level!r})"
        )

    def to_polars(self) -> pl.DataFrame:
        """One row: a, b, the estimates, n_texts and level."""
        return pl.DataFrame([self.to_dict()])

    def to_pandas(self):
        """:meth:`to_polars` as a pandas DataFrame (needs pandas)."""
        return _to_pandas(self.to_polars())


@dataclass(frozen=True)
class Neighbours:
    """The answer of :meth:`Dataset.nearest`: the query entry, a table, and the scale line."""

    query: str
    note: str | None
    table: pl.DataFrame
    scale: str
    search: dict | None = None  # with an index: rows re-ranked, the bound that certifies the answer

    def to_dict(self) -> dict:
        out = {
            "query": self.query,
            "note": self.note,
            "scale": self.scale,
            "se_note": llmath.SE_NOTE,
            "neighbours": self.table.to_dicts(),
        }
        if self.search is not None:
            out["search"] = self.search
        return out

    def __repr__(self) -> str:
        lines = [f"Neighbours of {self.query!r} ({self.table.height} nearest, KL in bits/byte):"]
        for row in self.table.head(10).iter_rows(named=True):
            lines.append(
                f"  {row['rank']:>3}  {row['entry_id']}  {row['kl_bpb']:.4g} ± {row['se_bpb']:.2g}  {row['level']}"
            )
        if self.table.height > 10:
            lines.append(f"  ... {self.table.height - 10} more (.table)")
        lines.append(f"  {self.scale}")
        return "\n".join(lines)

    def to_polars(self) -> pl.DataFrame:
        """The neighbours table (rank, entry_id, model_type, n_params, KL and SE, level)."""
        return self.table

    def to_pandas(self):
        """The neighbours table as a pandas DataFrame (needs pandas)."""
        return _to_pandas(self.table)


class Dataset:
    """A view of a dataset: all its entries, or those a ``where`` filter kept."""

    def __init__(self, store: _Store, rows: np.ndarray | None = None) -> None:
        self._store = store
        self._rows = np.arange(store.entries.height) if rows is None else rows

    # --- what is in it -------------------------------------------------------------------
    @property
    def metadata(self) -> DatasetMetadata:
        return self._store.metadata

    @property
    def folder(self) -> DatasetFolder:
        """The dataset folder this view reads (layout, text set, optional tables)."""
        return self._store.folder

    @property
    def root(self) -> Path:
        return self._store.folder.root

    @property
    def entries(self) -> pl.DataFrame:
        """Metadata of the entries in this view (no vectors), one row each."""
        return self._store.entries[self._rows].drop(FILE_COLUMN)

    @property
    def clip_thresholds(self) -> dict[str, float]:
        """The clip thresholds in use (nats): 'outputs', and 'layers' when logit-lens entries exist."""
        store = self._store
        names = {0: "outputs", 1: "layers"}
        return {
            names[int(g)]: float(store.row_thresholds[store.row_groups == g][0]) for g in np.unique(store.row_groups)
        }

    @property
    def clip_sources(self) -> dict[str, str]:
        """Where each threshold of :attr:`clip_thresholds` comes from: 'recorded' in llkl-db.json,
        or 'computed' on open (the recorded value is null: the clip_percentile of the group's values)."""
        store = self._store
        recorded = {0: self.metadata.clip_threshold, 1: self.metadata.layer_clip_threshold}
        names = {0: "outputs", 1: "layers"}
        return {
            names[int(g)]: "computed" if recorded[int(g)] is None else "recorded" for g in np.unique(store.row_groups)
        }

    def __len__(self) -> int:
        return int(self._rows.size)

    def filter(self, where: str | pl.Expr | None) -> Dataset:
        """The entries matching a SQL condition (``"layer IS NULL AND model_type = 'llama'"``)
        or a Polars expression."""
        if where is None or (isinstance(where, str) and not where.strip()):
            return self
        entries = self._store.entries
        expr = where_expr(where, entries.schema)
        frame = entries[self._rows].with_columns(pl.Series("_row", self._rows))
        try:
            kept = frame.filter(expr)["_row"].to_numpy()
        except pl.exceptions.PolarsError as exc:
            raise BadValueError("where", where, str(exc).splitlines()[0][:200]) from None
        return Dataset(self._store, kept)

    def resolve(self, name: str) -> Resolved:
        """Resolve a model or entry name against the whole dataset (see :func:`llkl_db.resolve.resolve`)."""
        return resolve(self._store.entries, name)

    def relations(self, query: int, others: np.ndarray, kl_bpb, se_bpb) -> list[relations.Relation]:
        """The relation of entry ``query`` to each of ``others`` (positions in the whole dataset):
        what the metadata say, else the classifier calibrated on this dataset's labelled pairs
        (:mod:`llkl_db.relations`). ``nearest``, ``kl`` and the explorer label pairs with it."""
        return relations.label_neighbours(
            self.calibration, self._store.entries, query, np.atleast_1d(others), kl_bpb, se_bpb
        )

    @property
    def calibration(self) -> relations.Calibration:
        """Relation classes calibrated on the labelled pairs among this view's entries (a
        ``where`` filter's), see :mod:`llkl_db.relations`."""
        return self._store.calibration_of(self._rows)

    def positions(self) -> np.ndarray:
        """The positions in the whole dataset of this view's entries, in view order."""
        return self._rows.copy()

    def entry(self, name: str) -> dict:
        """The metadata of the entry ``name`` resolves to, as a dict (no vector)."""
        return self._store.entries.drop(FILE_COLUMN).row(self.resolve(name).position, named=True)

    def vector(self, name: str) -> np.ndarray:
        """The clipped log-likelihood vector of an entry, float32, nats."""
        return self._store.rows([self.resolve(name).position])[0]

    @property
    def loglik(self) -> np.ndarray:
        """The clipped K x N matrix of this view, float32, nats."""
        return self._store.clipped[self._rows]

    @property
    def raw_loglik(self) -> np.ndarray:
        """The K x N matrix of this view as stored, not clipped (read from the files again)."""
        k, n = self._rows.size, self.metadata.n_texts
        require_memory(k * n * 4, f"reading the whole matrix ({k} entries x {n} texts, not clipped)")
        return self._store.folder.read_loglik(self._store.entries[self._rows])

    def loglik_rows(self, positions: np.ndarray) -> np.ndarray:
        """The clipped rows at ``positions`` (in this view), float32. With an index and the matrix
        not loaded, read a few row groups at a time (memory: the rows asked for and
        GROUPS_AT_ONCE row groups), else taken from the whole matrix."""
        store = self._store
        where = self._rows[np.asarray(positions, dtype=np.int64)]
        if not store.use_index:
            return store.clipped[where]
        n = self.metadata.n_texts
        require_memory(where.size * n * 4, f"reading {where.size} entries x {n} texts")
        out = np.empty((where.size, n), dtype=np.float32)
        order = np.argsort(where, kind="stable")
        groups = store.group_of[where[order]]  # nondecreasing: index order is storage order
        firsts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        for i in range(0, firsts.size, GROUPS_AT_ONCE):
            stop = firsts[i + GROUPS_AT_ONCE] if i + GROUPS_AT_ONCE < firsts.size else order.size
            chosen = order[firsts[i] : stop]
            got, values = store.fetch_rows(where[chosen])
            by_position = np.argsort(got)
            out[chosen] = values[by_position[np.searchsorted(got[by_position], where[chosen])]]
        return out

    # --- queries -------------------------------------------------------------------------
    def kl(self, a: str, b: str, bias_margin: bool = False) -> PairKL:
        """KL divergence between two entries, bits/byte and nats/text, each with its SE.

        The SE covers sampling noise only. ``bias_margin=True`` also reports a bound on the
        estimator's bias (clipping and second order; ``llkl_db.math.bias_margin_bpb``, measured
        by ``benchmarks/bench_bias.py``), so that KL +- (2 SE + margin) covers the exact value."""
        ra, rb = self.resolve(a), self.resolve(b)
        va, vb = self._store.rows([ra.position, rb.position])
        est = llmath.pair_kl(va, vb, self.metadata.mean_text_bytes)
        margin = llmath.bias_margin_bpb(est.kl_bpb) if bias_margin else None
        to_nats = self.metadata.mean_text_bytes * llmath.kl.LN2
        return PairKL(
            a=ra.entry_id,
            b=rb.entry_id,
            kl_bpb=est.kl_bpb,
            se_bpb=est.se_bpb,
            kl_nats=est.kl_nats,
            se_nats=est.se_nats,
            n_texts=self.metadata.n_texts,
            level=self.relations(ra.position, np.array([rb.position]), est.kl_bpb, est.se_bpb)[0].relation,
            bias_bpb=margin,
            bias_nats=None if margin is None else margin * to_nats,
            warning=bos_note(*self._store.entries[[ra.position, rb.position]]["bos_policy"].to_list()),
        )

    def nearest(self, name: str, k: int = 10, bias_margin: bool = False) -> Neighbours:
        """The k entries of this view nearest to ``name`` in KL (the query itself excluded). The
        query is resolved against the whole dataset, so it may lie outside a filtered view.
        ``bias_margin=True`` adds columns bias_bpb and bias_nats (see :meth:`kl`)."""
        if k < 1:
            raise BadValueError("k", k, "must be at least 1")
        query = self.resolve(name)
        store = self._store
        mask = np.zeros(store.entries.height, dtype=bool)
        mask[self._rows] = True
        mask[query.position] = False
        search = None
        note = query.note
        if store.use_index:
            idx, var, se_var, search = self._nearest_indexed(query.position, k, mask)
        else:
            if store.index is None and store.entries.height * self.metadata.n_texts * 4 > NOTE_ABOVE_BYTES:
                note = f"{note}; {INDEX_NOTE}" if note else INDEX_NOTE
            prepared = store.prepared
            idx, var, se_var = llmath.nearest(prepared, prepared.clipped[query.position], k, mask)
        est = llmath.from_variance(var, se_var, self.metadata.mean_text_bytes)
        meta = self._store.entries[idx].select("entry_id", "model_type", "n_params")
        table = meta.with_columns(
            pl.Series("kl_bpb", np.atleast_1d(est.kl_bpb)),
            pl.Series("se_bpb", np.atleast_1d(est.se_bpb)),
            pl.Series("kl_nats", np.atleast_1d(est.kl_nats)),
            pl.Series("se_nats", np.atleast_1d(est.se_nats)),
        ).with_row_index("rank", offset=1)
        found = self.relations(query.position, idx, est.kl_bpb, est.se_bpb)
        table = table.with_columns(
            pl.Series("level", [r.relation for r in found], dtype=pl.String),
            pl.Series("confidence", [r.confidence for r in found], dtype=pl.Float64),
            pl.Series("basis", [r.basis for r in found], dtype=pl.String),
        )
        if bias_margin:
            margin = np.atleast_1d(llmath.bias_margin_bpb(np.atleast_1d(est.kl_bpb)))
            table = table.with_columns(
                pl.Series("bias_bpb", margin, dtype=pl.Float64),
                pl.Series("bias_nats", margin * self.metadata.mean_text_bytes * llmath.kl.LN2, dtype=pl.Float64),
            )
        policies = self._store.entries["bos_policy"]
        own = policies[query.position]
        other = [p for p in policies.gather(np.atleast_1d(idx)).to_list() if bos_note(own, p)]
        notes = [note] if note else []
        if other:
            notes.append(f"{len(other)} of {table.height} neighbours: {bos_note(own, other[0])}")
        note = "; ".join(notes) or None
        return Neighbours(query.entry_id, note, table, scale_line(table["kl_bpb"].to_list()), search)

    def _nearest_indexed(self, position: int, k: int, mask: np.ndarray):
        """Exact k nearest through the index: bounds for all, exact re-rank of candidates."""
        from llkl_db.math import index as mindex

        store = self._store
        index = store.index
        read_before = store.reader.bytes_read
        query_row = store.rows([position])[0]
        bounds = mindex.lower_bounds(index.coords, index.residuals, index.norms, position, store.tau, index.ynorms)
        # Memory: at most BATCH_BYTES of candidates' row groups (float32) per batch, plus k rows.
        groups_per_batch = max(1, BATCH_BYTES // (ROWS_PER_GROUP * 4 * self.metadata.n_texts))
        res = mindex.search(
            bounds, mask, store.fetch_rows, query_row, k, max_batch=groups_per_batch, group_of=store.group_of
        )
        search = {
            "method": "index",
            "n_reranked": res.n_reranked,
            "smallest_bound_not_reranked_kl_nats": res.next_bound / 2.0,
            "bytes_read": store.reader.bytes_read - read_before,
        }
        return res.positions, res.var, res.se_var, search

    def kl_matrix(self, with_se: bool = False) -> tuple[list[str], np.ndarray, np.ndarray | None]:
        """Entry ids and the full KL matrix of this view in bits/byte (and its SE matrix)."""
        store = self._store
        k, n = self._rows.size, self.metadata.n_texts
        need = k * n * 4 * (1 if store.matrix_loaded else 2) + k * n * 4 + k * k * 8 * (2 if with_se else 1)
        require_memory(need, f"the KL matrix of {k} entries x {n} texts")
        if self._rows.size == store.entries.height and np.array_equal(self._rows, np.arange(self._rows.size)):
            prepared = store.prepared  # the whole dataset: reuse the cached centring
        else:
            prepared = llmath.prepare_clipped(store.clipped[self._rows])
        ids = self.entries["entry_id"].to_list()
        to_bpb = llmath.nats_to_bits_per_byte(0.5, self.metadata.mean_text_bytes)  # Var -> KL bits/byte
        se = None
        if with_se:
            se = llmath.variance_se_matrix(prepared)
            se *= to_bpb
        kl = llmath.variance_matrix(prepared)
        kl *= to_bpb
        return ids, kl, se

    def models(self, search: str | None = None) -> pl.DataFrame:
        """One row per model: its type, size and how many entries of each kind it has."""
        entries = self.entries
        if search:
            entries = entries.filter(pl.col("model_id").str.to_lowercase().str.contains(search.lower(), literal=True))
        return (
            entries.group_by("model_id", maintain_order=True)
            .agg(
                pl.col("model_type").drop_nulls().first(),
                pl.col("n_params").drop_nulls().first(),
                pl.len().alias("entries"),
                pl.col("revision").n_unique().alias("revisions"),
                pl.col("layer").drop_nulls().n_unique().alias("layers"),
                pl.col("variant").drop_nulls().n_unique().alias("variants"),
            )
            .sort("model_id")
        )

    def _clip_facts(self) -> dict:
        """``clip_applied_<group>`` and ``clip_source_<group>``; the vectors are read only when a
        threshold is not recorded (null: computed on open)."""
        recorded = {"outputs": self.metadata.clip_threshold, "layers": self.metadata.layer_clip_threshold}
        sources = self.clip_sources
        applied = self.clip_thresholds if "computed" in sources.values() else recorded
        out: dict = {f"clip_applied_{name}": float(applied[name]) for name in sources}
        out.update({f"clip_source_{name}": source for name, source in sources.items()})
        return out

    def info(self) -> dict:
        """Dataset version, text set, N, B, K, clip thresholds and size on disk. ``clip_threshold``
        and ``layer_clip_threshold`` are the recorded values (null: computed on open);
        ``clip_applied_<group>`` are the thresholds queries use and ``clip_source_<group>`` says
        whether each was recorded or computed (reads the vectors when one is computed)."""
        meta = self.metadata
        files = self.folder.vector_files()
        return {
            "source": str(self.root),
            "schema_version": meta.schema_version,
            "dataset_version": meta.dataset_version,
            "text_set": meta.text_set,
            "text_set_sha256": meta.text_set_sha256,
            "n_texts": meta.n_texts,
            "mean_text_bytes": meta.mean_text_bytes,
            "n_entries": len(self),
            "n_models": self.entries["model_id"].n_unique(),
            "clip_threshold": meta.clip_threshold,
            "layer_clip_threshold": meta.layer_clip_threshold,
            "clip_percentile": meta.clip_percentile,
            **self._clip_facts(),
            "vector_files": len(files),
            "size_bytes": sum(f.stat().st_size for f in files),
            "index": None
            if self._store.index is None
            else {"d": self._store.index.info.d, "created_at": self._store.index.info.created_at},
        }

    def __repr__(self) -> str:
        meta = self.metadata
        return (
            f"Dataset({len(self)} entries, {self.entries['model_id'].n_unique()} models, text set {meta.text_set!r} "
            f"(N={meta.n_texts}), version {meta.dataset_version}, from {str(self.root)!r})"
        )

    def to_polars(self) -> pl.DataFrame:
        """The entries of this view, one row each (metadata; no vectors)."""
        return self.entries

    def to_pandas(self):
        """The entries of this view as a pandas DataFrame (needs pandas)."""
        return _to_pandas(self.entries)


def _to_pandas(frame: pl.DataFrame):
    try:
        import pandas  # noqa: F401
    except ImportError:
        raise ImportError("to_pandas() needs pandas: pip install pandas (to_polars() needs nothing more)") from None
    return frame.to_pandas()
