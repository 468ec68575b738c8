"""Import the KL-scale release (arXiv 2505.15353; shimo-lab/modelmap, folder ``kl-scale/data/``) as schema v1.

Formats as the release's own code writes and reads them (``kl-scale/src/calc_logp_*.py``,
``calc_kl.py``, ``pythia.py``, ``calc_weight_distance.py`` of shimo-lab/modelmap) and as
method.md section 3 describes them; verified on fabricated files only. What is read (every
pickle through :func:`load_pickle`; files are found anywhere below the folder):

- ``texts.json``: a JSON list of the evaluation texts (strings), in order;
- ``model_info/model_list.json``: a JSON list of the 1,018 model names;
- ``logp/oyama2025_logp.pkl``: their vectors in the order of model_list.json, as a K x N array
  (the release's), a list of K vectors (or None), or a dict from model name to vector;
- ``logp/pretraining_logp.pkl``: Pythia run ("410m", "1.4b", "410m-seed3", ...) -> step (an int,
  "1000" or "step1000") -> vector or None; entries ``EleutherAI/pythia-RUN@stepN`` with step
  and seed;
- ``logp/layer_logp.pkl``: model -> layer (int) -> vector, or model -> None: logit-lens entries
  ``:L{layer}`` (hidden state 0 = the embeddings; the release scores the last hidden state with
  the model's own logits: it is kept as the last layer, so that the adjacent pairs are the
  release's; n_layers is left unset);
- ``logp/8bit_quantization_logp.pkl``, ``logp/4bit_quantization_logp.pkl``: model -> vector or
  None: variants bnb-8bit and bnb-4bit of the model's entry;
- ``model_info/modelname2type.json`` (model -> type), ``model_info/sibling_info.json`` (child
  -> parent: null, a name, or a list of names; a one-element list is the parent, a longer one a
  merge, left without base_model as the release's code does; names outside model_list.json are
  skipped and counted, as there), ``type2color.json`` (not needed; ignored);
- ``weight_distance/weight_distance.pkl``: Pythia size -> a square matrix over the 154 Pythia
  checkpoints (step0, 1, 2, 4, ..., 512, 1000, 2000, ..., 143000) with the squared parameter
  distance of checkpoints i < j in its upper triangle (zero where not computed; a zero before a
  computed entry of its row is a real zero, e.g. step0-step1); also accepted: run ->
  {(step_a, step_b): distance} or run -> step_a -> step_b -> distance;
- cached t-SNE coordinates: ignored.

Vectors of None are skipped and counted. Entries the release's own code leaves out (the 410m
seed runs 3 and 4, the 1b checkpoint at step 116000) are kept with ``excluded_reason``. The
vectors were scored like the 2025 ones: bos_policy by model type (:mod:`llkl_db.bos`), dtype
float16, revision ``unknown`` for models without a recorded one.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llkl_db.analysis.settings import KLSCALE_CONTRIBUTOR
from llkl_db.bos import bos_policy_for
from llkl_db.errors import LlklError

TEXTS_FILE = "texts.json"
MODEL_LIST_FILE = "model_list.json"
MODELS_FILE = "oyama2025_logp.pkl"
PRETRAINING_FILE = "pretraining_logp.pkl"
LAYERS_FILE = "layer_logp.pkl"
VARIANT_FILES = {"bnb-8bit": "8bit_quantization_logp.pkl", "bnb-4bit": "4bit_quantization_logp.pkl"}
TYPES_FILE = "modelname2type.json"
SIBLINGS_FILE = "sibling_info.json"
WEIGHTS_FILE = "weight_distance.pkl"
PILE_TEXT_SET = "pile-10k"
OWN_TEXT_SET = "kl-scale"
PILE_TEXTS_FILE = "texts-10k-pile.jsonl"
REVISION = "unknown"
DTYPE = "float16"
PYTHIA_ORG = "EleutherAI/pythia-"
PYTHIA_TYPE = "gpt_neox"
ENTRIES_PER_FILE = 256
_RUN = re.compile(r"^(\d+(?:\.\d+)?)([mb])(-deduped)?(?:-seed(\d+))?$", re.IGNORECASE)
_STEP = re.compile(r"^(?:step)?(\d+)$")
PYTHIA_CHECKPOINT_STEPS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, *range(1000, 143001, 1000))

# What the release's own analysis code (kl-scale/src/pythia.py, calc_kl.py) leaves out.
EXCLUDED_SEEDS = {("410m", 3): "anomalous seed run", ("410m", 4): "anomalous seed run"}
EXCLUDED_CHECKPOINTS = {("1b", 116000): "checkpoint excluded by the release's code"}
EXCLUDED_SOURCE = " (kl-scale/src/pythia.py of shimo-lab/modelmap)"


@dataclass
class KlScaleSummary:
    """What an import of the kl-scale release wrote."""

    out: Path
    entries: dict[str, int]
    n_weight_distances: int
    n_excluded: int
    text_set: str
    dataset_version: str
    skipped_none: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_entries(self) -> int:
        return sum(self.entries.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "n_entries": self.n_entries,
            "entries": self.entries,
            "n_weight_distances": self.n_weight_distances,
            "n_excluded": self.n_excluded,
            "text_set": self.text_set,
            "dataset_version": self.dataset_version,
            "skipped_none": self.skipped_none,
            "skipped": self.skipped,
            "notes": self.notes,
        }


def _find(folder: Path, name: str) -> Path | None:
    direct = folder / name
    if direct.is_file():
        return direct
    found = sorted(p for p in folder.rglob(name) if p.is_file())
    return found[0] if found else None


def _require(folder: Path, name: str) -> Path:
    path = _find(folder, name)
    if path is None:
        raise LlklError(f"{folder}: {name} not found (the kl-scale release's data folder holds it)")
    return path


def _json(path: Path) -> Any:
    from llkl_db.io.jsonfile import read_json

    return read_json(path)


def _pickle(path: Path) -> Any:
    from .safe_pickle import load_pickle

    return load_pickle(path)


def read_texts(path: Path) -> list[str]:
    """``texts.json``: a JSON list of strings."""
    data = _json(path)
    if not isinstance(data, list) or not data or not all(isinstance(t, str) for t in data):
        raise LlklError(f"{path}: expected a non-empty JSON list of texts (strings)")
    return data


def read_model_list(path: Path) -> list[str]:
    """``model_list.json``: a JSON list of distinct model names."""
    data = _json(path)
    if not isinstance(data, list) or not data or not all(isinstance(t, str) for t in data):
        raise LlklError(f"{path}: expected a non-empty JSON list of model names (strings)")
    if len(set(data)) != len(data):
        dup = next(n for n in data if data.count(n) > 1)
        raise LlklError(f"{path}: model {dup} appears more than once")
    return data


def read_str_map(path: Path) -> dict[str, str]:
    """A JSON object from string to string (``modelname2type.json``)."""
    data = _json(path)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise LlklError(f"{path}: expected a JSON object from model name to string")
    return data


def read_siblings(path: Path, known: set[str], notes: list[str]) -> dict[str, str]:
    """``sibling_info.json``: child -> parent (null, a name, or a list of names). A one-element
    list is the parent; a longer one (a merge) gives no parent; pairs naming a model outside
    ``known`` are skipped (the release's calc_kl.py does the same), each counted in ``notes``."""
    data = _json(path)
    if not isinstance(data, dict):
        raise LlklError(f"{path}: expected a JSON object from child model to parent model")
    out = {}
    merges, unknown = 0, []
    for child, parent in data.items():
        if parent is None:
            continue
        if isinstance(parent, list) and parent and all(isinstance(p, str) for p in parent):
            if len(parent) > 1:
                merges += 1
                continue
            parent = parent[0]
        if not isinstance(parent, str):
            raise LlklError(f"{path}: the parent of {child} must be null, a model name or a list of names")
        missing = [name for name in (child, parent) if name not in known]
        if missing:
            unknown.append(missing[0])
            continue
        out[child] = parent
    if merges:
        notes.append(f"{path.name}: {merges} merges (several parents) left without base_model")
    if unknown:
        notes.append(
            f"{path.name}: {len(unknown)} child-parent pairs name a model outside {MODEL_LIST_FILE} "
            f"(e.g. {unknown[0]}): skipped"
        )
    return out


def _vector(value: Any, where: str, n: int) -> np.ndarray | None:
    """A 1-d float vector of ``n`` values, or None (an entry the release has no vector for)."""
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise LlklError(f"{where}: not a numeric vector") from None
    if arr.ndim != 1 or arr.size != n:
        raise LlklError(f"{where}: has shape {arr.shape}, the {TEXTS_FILE} of the release has {n} texts")
    return arr


def _step(key: Any, where: str) -> int:
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and key >= 0:
        return int(key)
    match = _STEP.match(key) if isinstance(key, str) else None
    if match is None:
        raise LlklError(f"{where}: {key!r} is not a training step (an integer or 'stepN')")
    return int(match.group(1))


def _layer(key: Any, where: str) -> int:
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and key >= 0:
        return int(key)
    if isinstance(key, str) and key.isdigit():
        return int(key)
    raise LlklError(f"{where}: {key!r} is not a layer index")


def pythia_run(key: Any, where: str) -> tuple[str, str, int | None]:
    """(model id, size, seed) of a run key like '410m' or '410m-seed3'."""
    match = _RUN.match(key) if isinstance(key, str) else None
    if match is None:
        raise LlklError(f"{where}: {key!r} is not a Pythia run (like '410m' or '410m-seed3')")
    size = f"{match.group(1)}{match.group(2).lower()}"
    seed = int(match.group(4)) if match.group(4) else None
    model_id = f"{PYTHIA_ORG}{size}{match.group(3) or ''}" + (f"-seed{seed}" if seed is not None else "")
    return model_id, size, seed


def _n_params_of(size: str) -> int:
    return int(round(float(size[:-1]) * (1e6 if size[-1] == "m" else 1e9)))


def _dict(value: Any, path: Path, what: str) -> dict:
    if not isinstance(value, dict):
        raise LlklError(f"{path}: expected a dict from {what}, got {type(value).__name__}")
    return value


def read_models(path: Path, names: list[str], n: int) -> dict[str, np.ndarray | None]:
    """``oyama2025_logp.pkl``: rows in the order of model_list.json (an array, a list) or a dict."""
    data = _pickle(path)
    if isinstance(data, dict):
        unknown = [k for k in data if k not in set(names)]
        if unknown:
            raise LlklError(f"{path}: unknown model {unknown[0]} (not in {MODEL_LIST_FILE})")
        return {k: _vector(v, f"{path}: {k}", n) for k, v in data.items()}
    if isinstance(data, np.ndarray) and data.ndim == 2 or isinstance(data, list):
        if len(data) != len(names):
            raise LlklError(f"{path}: {len(data)} rows, {MODEL_LIST_FILE} lists {len(names)} models")
        return {
            name: _vector(row, f"{path}: row {i} ({name})", n)
            for i, (name, row) in enumerate(zip(names, data, strict=True))
        }
    raise LlklError(f"{path}: expected a K x N array, a list of vectors or a dict from model name to vector")


def read_weight_distances(path: Path) -> list[dict[str, Any]]:
    """Rows of the weight_distances table from ``weight_distance.pkl`` (see the module docstring)."""
    data = _dict(_pickle(path), path, "run to distances")
    rows = []
    for run, pairs in data.items():
        if isinstance(run, str) and _RUN.match(run):
            model_id = pythia_run(run, str(path))[0]
        elif isinstance(run, str) and run:
            model_id = run
        else:
            raise LlklError(f"{path}: {run!r} is not a run name")
        if isinstance(pairs, np.ndarray):
            rows.extend(_matrix_rows(pairs, model_id, f"{path}: {run}"))
            continue
        pairs = _dict(pairs, path, f"step pairs ({run})")
        flat = []
        for key, value in pairs.items():
            if isinstance(key, (tuple, list)) and len(key) == 2:
                flat.append((key[0], key[1], value))
            elif isinstance(value, dict):
                flat.extend((key, b, d) for b, d in value.items())
            else:
                raise LlklError(f"{path}: {run}: expected (step_a, step_b) -> distance or step_a -> step_b -> distance")
        for a, b, d in flat:
            sa, sb = sorted((_step(a, f"{path}: {run}"), _step(b, f"{path}: {run}")))
            if isinstance(d, bool) or not isinstance(d, (int, float, np.integer, np.floating)):
                raise LlklError(f"{path}: {run} ({sa}, {sb}): the distance is not a number")
            if not math.isfinite(float(d)) or sa == sb:
                continue
            rows.append(
                {
                    "model_id": model_id,
                    "revision_a": f"step{sa}",
                    "step_a": sa,
                    "revision_b": f"step{sb}",
                    "step_b": sb,
                    "sq_distance": float(d),
                }
            )
    return rows


def _matrix_rows(matrix: np.ndarray, model_id: str, where: str) -> list[dict[str, Any]]:
    """Rows from a square matrix over :data:`PYTHIA_CHECKPOINT_STEPS` (upper triangle)."""
    n = len(PYTHIA_CHECKPOINT_STEPS)
    if matrix.shape != (n, n) or not np.issubdtype(matrix.dtype, np.number):
        raise LlklError(f"{where}: expected a {n} x {n} numeric matrix over the Pythia checkpoints, got {matrix.shape}")
    d = matrix.astype(np.float64)
    rows = []
    for i in range(n):
        computed = np.flatnonzero(d[i, i + 1 :] > 0)
        if computed.size == 0:
            continue
        last = i + 1 + int(computed[-1])
        for j in range(i + 1, last + 1):
            if np.isfinite(d[i, j]):
                a, b = PYTHIA_CHECKPOINT_STEPS[i], PYTHIA_CHECKPOINT_STEPS[j]
                rows.append(
                    {
                        "model_id": model_id,
                        "revision_a": f"step{a}",
                        "step_a": a,
                        "revision_b": f"step{b}",
                        "step_b": b,
                        "sq_distance": float(d[i, j]),
                    }
                )
    return rows


def _text_set(texts: list[str], path: Path, reference: Path | None, out: Path, staging: Path, notes: list[str]):
    """The text set of ``texts.json``: pile-10k when it is the same texts in the same order as a
    pile-10k reference (``reference``, the target dataset's, or a texts-10k-pile.jsonl beside
    the release), else its own set 'kl-scale'."""
    from llkl_db.io.folder import DatasetFolder
    from llkl_db.io.texts import text_set_sha256, write_texts
    from llkl_db.textsets import load_text_set, read_text_set

    sha = text_set_sha256(texts)
    candidates = []
    if reference is not None:
        if reference.suffix == ".parquet":
            candidates.append(load_text_set(reference))
        else:
            from llkl_db.textsets.modelmap import import_modelmap as import_texts

            target = staging / "reference" / f"{PILE_TEXT_SET}.parquet"
            target.parent.mkdir()
            import_texts(reference, target, PILE_TEXT_SET)
            candidates.append(read_text_set(target))
    target_folder = DatasetFolder(out)
    if target_folder.is_dataset() and target_folder.metadata.text_set == PILE_TEXT_SET:
        candidates.append(target_folder.text_set)
    for ref in candidates:
        if ref.sha256 == sha:
            notes.append(
                f"{path.name} holds the same texts in the same order as {PILE_TEXT_SET} (sha256 {sha[:12]}): "
                "imported on that text set, so it merges with the 2025 import"
            )
            return ref
    if candidates:
        notes.append(
            f"{path.name} (sha256 {sha[:12]}) is not the {PILE_TEXT_SET} text set "
            f"(sha256 {candidates[0].sha256[:12]}): imported as text set {OWN_TEXT_SET}, never mixed with it"
        )
    target = staging / f"{OWN_TEXT_SET}.parquet"
    write_texts(target, texts, [f"kl-scale/{TEXTS_FILE}"] * len(texts))
    return read_text_set(target)


def import_klscale(
    folder: str | Path,
    out: str | Path,
    texts: str | Path | None = None,
    dataset_version: str | None = None,
    overwrite: bool = False,
) -> KlScaleSummary:
    """Convert the kl-scale release in ``folder`` into the dataset ``out`` (created or extended).

    ``texts``: a pile-10k reference (the 2025 ``texts-10k-pile.jsonl`` or a pile-10k text-set
    Parquet) to recognise texts.json as that set; the target dataset's pile-10k set, or a
    texts-10k-pile.jsonl inside ``folder``, serve too. Entries already in ``out`` (the same
    ids, e.g. the 1,018 models from the 2025 import) are kept as they are and counted."""
    from llkl_db.io.folder import DatasetFolder, entry_kind
    from llkl_db.io.vectors import entry_id
    from llkl_db.merge import merge

    from .modelmap import _write_entries

    folder, out = Path(folder), Path(out)
    DatasetFolder(out).check_writable(overwrite)
    if not folder.is_dir():
        raise LlklError(f"{folder}: no such folder")
    texts_path = _require(folder, TEXTS_FILE)
    list_path = _require(folder, MODEL_LIST_FILE)
    models_path = _require(folder, MODELS_FILE)
    text_list = read_texts(texts_path)
    n = len(text_list)
    names = read_model_list(list_path)
    known = set(names)
    notes: list[str] = []
    types_path = _find(folder, TYPES_FILE)
    types = read_str_map(types_path) if types_path else {}
    siblings_path = _find(folder, SIBLINGS_FILE)
    siblings = read_siblings(siblings_path, known, notes) if siblings_path else {}
    for name, path in ((TYPES_FILE, types_path), (SIBLINGS_FILE, siblings_path)):
        if path is None:
            notes.append(f"{name} not found: no {'model types' if name == TYPES_FILE else 'base models'}")

    rows: list[dict[str, Any]] = []
    vectors: list[np.ndarray] = []
    none_counts: dict[str, int] = {}
    skipped: list[str] = []

    def common(model_id: str, model_type: str | None) -> dict[str, Any]:
        return {
            "model_id": model_id,
            "model_type": model_type,
            "text_set": None,  # filled in once the text set is known
            "text_set_sha256": None,
            "bos_policy": bos_policy_for(model_type).policy,
            "dtype": DTYPE,
            "tokenizer": model_id,
            "contributor": KLSCALE_CONTRIBUTOR,
        }

    def add(file: Path, vector: np.ndarray | None, row: dict[str, Any]) -> None:
        if vector is None:
            none_counts[file.name] = none_counts.get(file.name, 0) + 1
            return
        if not np.isfinite(vector).all():
            skipped.append(f"{row['entry_id']}: non-finite values ({file.name})")
            return
        rows.append(row)
        vectors.append(vector)

    for name, vector in read_models(models_path, names, n).items():
        row = {**common(name, types.get(name)), "entry_id": entry_id(name, REVISION), "revision": REVISION}
        add(models_path, vector, {**row, "base_model": siblings.get(name)})

    path = _find(folder, PRETRAINING_FILE)
    if path is not None:
        for run, steps in _dict(_pickle(path), path, "Pythia run to steps").items():
            model_id, size, seed = pythia_run(run, str(path))
            base = common(model_id, types.get(model_id, PYTHIA_TYPE))
            for key, value in _dict(steps, path, f"step to vector ({run})").items():
                step = _step(key, f"{path}: {run}")
                reason = EXCLUDED_SEEDS.get((size, seed)) or (
                    EXCLUDED_CHECKPOINTS.get((size, step)) if seed is None else None
                )
                row = {
                    **base,
                    "entry_id": entry_id(model_id, f"step{step}"),
                    "revision": f"step{step}",
                    "step": step,
                    "seed": seed,
                    "n_params": _n_params_of(size),
                    "excluded_reason": reason + EXCLUDED_SOURCE if reason else None,
                }
                add(path, _vector(value, f"{path}: {run} step {step}", n), row)

    path = _find(folder, LAYERS_FILE)
    if path is not None:
        for model, layers in _dict(_pickle(path), path, "model to layers").items():
            if not isinstance(model, str):
                raise LlklError(f"{path}: {model!r} is not a model name")
            if layers is None:  # a model the release has no layers for
                none_counts[path.name] = none_counts.get(path.name, 0) + 1
                continue
            base = common(model, types.get(model))
            base["contributor"] = f"{KLSCALE_CONTRIBUTOR}; logit lens"
            layers = _dict(layers, path, f"layer to vector ({model})")
            for key, value in layers.items():
                layer = _layer(key, f"{path}: {model}")
                row = {**base, "entry_id": entry_id(model, REVISION, layer), "revision": REVISION, "layer": layer}
                add(path, _vector(value, f"{path}: {model} layer {layer}", n), row)

    for variant, file in VARIANT_FILES.items():
        path = _find(folder, file)
        if path is None:
            notes.append(f"{file} not found: no {variant} variants")
            continue
        for model, value in _dict(_pickle(path), path, "model to vector").items():
            if not isinstance(model, str):
                raise LlklError(f"{path}: {model!r} is not a model name")
            row = {
                **common(model, types.get(model)),
                "entry_id": entry_id(model, REVISION, None, variant),
                "revision": REVISION,
                "variant": variant,
            }
            add(path, _vector(value, f"{path}: {model}", n), row)

    weights_path = _find(folder, WEIGHTS_FILE)
    weight_rows = read_weight_distances(weights_path) if weights_path else []

    target = DatasetFolder(out)
    present: set[str] = set()
    if target.is_dataset() and not overwrite:
        present = set(target.entries()["entry_id"].to_list())
    keep = [i for i, r in enumerate(rows) if r["entry_id"] not in present]
    if len(keep) < len(rows):
        notes.append(f"{len(rows) - len(keep)} entries already in {out} kept as they are")
    rows = [rows[i] for i in keep]
    vectors = [vectors[i] for i in keep]
    if not rows:
        raise LlklError(f"{folder}: no vectors to import ({sum(none_counts.values())} None, {len(skipped)} skipped)")

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    try:
        text_set = _text_set(text_list, texts_path, Path(texts) if texts else _find(folder, PILE_TEXTS_FILE),
                             out, staging, notes)  # fmt: skip
        for row in rows:
            row["text_set"], row["text_set_sha256"] = text_set.name, text_set.sha256
        build = DatasetFolder(staging / "build")
        build.add_text_set(text_set)
        by_kind: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            by_kind.setdefault(entry_kind(row.get("step"), row.get("layer"), row.get("variant")), []).append(i)
        matrix = np.stack(vectors)
        for kind, index in by_kind.items():
            for start in range(0, len(index), ENTRIES_PER_FILE):
                part = index[start : start + ENTRIES_PER_FILE]
                path = build.vector_path(kind, f"kl-scale-{start // ENTRIES_PER_FILE:03d}")
                _write_entries(path, [rows[i] for i in part], matrix[part])
        if weight_rows:
            build.write_table("weight_distances", weight_rows)
        metadata = merge([build.root], out, dataset_version=dataset_version, overwrite=overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts: dict[str, int] = {}
    for kind, index in by_kind.items():
        counts[kind] = len(index)
    return KlScaleSummary(
        out=out,
        entries=counts,
        n_weight_distances=len(weight_rows),
        n_excluded=sum(1 for r in rows if r.get("excluded_reason")),
        text_set=metadata.text_set,
        dataset_version=metadata.dataset_version,
        skipped_none=none_counts,
        skipped=skipped,
        notes=notes,
    )
