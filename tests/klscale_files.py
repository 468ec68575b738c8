"""A small kl-scale release (arXiv 2505.15353; shimo-lab/modelmap, kl-scale/data) in the formats
method.md and issue 11 describe, written the way the release's code reads them: JSON files, and
pickles from plain ``pickle.dump`` of dicts of numpy arrays (and None where a vector is missing)."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
from modelmap_files import pile_texts

MODELS = [
    ("org-0/model-000", "llama-2"),
    ("org-1/model-001", "llama-2"),
    ("org-2/model-002", "mistral"),
    ("org-3/model-003", "mistral"),
    ("org-4/model-004", "qwen2"),
    ("org-5/model-005", "gpt_neox"),
    ("org-6/model-006", "qwen2"),
    ("org-0/model-007", "llama-2"),
]
# null (no parent), a name, a one-element list, a merge (several parents), a parent outside the list
SIBLINGS = {
    "org-0/model-000": None,
    "org-1/model-001": "org-0/model-000",
    "org-3/model-003": ["org-2/model-002"],
    "org-5/model-005": ["org-0/model-000", "org-2/model-002"],
    "org-0/model-007": "elsewhere/not-in-the-list",
}
FINE_TUNES = [("org-1/model-001", "org-0/model-000"), ("org-3/model-003", "org-2/model-002")]
PYTHIA_STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, *range(1000, 143001, 1000)]
SEED_STEPS = [1000, 2000, 3000, 143000]
ONE_B_STEPS = [114000, 115000, 116000, 117000, 118000, 143000]
LAYER_MODEL = "org-2/model-002"
N_LAYERS = 5


def _vector(rng, n_bytes: np.ndarray, level: float, spread: float) -> np.ndarray:
    return -n_bytes * math.log(2) * level + spread * rng.standard_normal(n_bytes.size)


def write_klscale(root: Path, n: int = 40, seed: int = 0, texts: list[str] | None = None) -> dict:
    """Write the release under ``root`` (``root`` plays kl-scale/data); return what was written."""
    rng = np.random.default_rng(seed)
    texts = texts if texts is not None else pile_texts(n, seed)
    n = len(texts)
    n_bytes = np.array([len(t.encode()) for t in texts], dtype=np.float64)
    for sub in ("logp", "model_info", "weight_distance", "tsne"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "texts.json").write_text(json.dumps(texts))
    names = [m for m, _ in MODELS]
    (root / "model_info" / "model_list.json").write_text(json.dumps(names))
    (root / "model_info" / "modelname2type.json").write_text(json.dumps(dict(MODELS)))
    (root / "model_info" / "sibling_info.json").write_text(json.dumps(SIBLINGS))
    (root / "model_info" / "type2color.json").write_text(json.dumps({"llama-2": "#1f77b4", "mistral": "#ff7f0e"}))
    (root / "tsne" / "tsne_coordinates.pkl").write_bytes(pickle.dumps(np.zeros((len(names), 2))))

    common = _vector(rng, n_bytes, 1.0, 3.0)
    models = np.stack([common + 0.3 * (1 + i % 3) * rng.standard_normal(n) for i in range(len(names))])
    model_rows: list[np.ndarray | None] = list(models)
    model_rows[6] = None  # a model the release has no vector for
    (root / "logp" / "oyama2025_logp.pkl").write_bytes(pickle.dumps(model_rows))

    runs = ["410m", "410m-seed1", "410m-seed2", "410m-seed3", "1b"]
    pretraining: dict[str, dict[int, np.ndarray | None]] = {run: {} for run in runs}
    walk = common.copy()
    for step in PYTHIA_STEPS:
        walk = walk + 0.05 * rng.standard_normal(n)
        pretraining["410m"][step] = walk.copy()
    pretraining["410m"][64] = None
    for run in ("410m-seed1", "410m-seed2", "410m-seed3"):
        for step in SEED_STEPS:
            pretraining[run][step] = pretraining["410m"][step] + 0.2 * rng.standard_normal(n)
    pretraining["410m-seed1"][2000] = None
    for step in ONE_B_STEPS:
        pretraining["1b"][step] = common + 0.1 * rng.standard_normal(n) + (0.5 if step == 116000 else 0.0)
    (root / "logp" / "pretraining_logp.pkl").write_bytes(pickle.dumps(pretraining))

    layers: dict[str, dict[int, np.ndarray] | None] = {LAYER_MODEL: {}, "org-3/model-003": None}
    for layer in range(N_LAYERS):
        layers[LAYER_MODEL][layer] = common * (0.5 + 0.1 * layer) + rng.standard_normal(n)
    (root / "logp" / "layer_logp.pkl").write_bytes(pickle.dumps(layers))

    quantized = {}
    for bits, spread in ((8, 0.05), (4, 0.15)):
        q = {name: models[i] + spread * rng.standard_normal(n) for i, name in enumerate(names[:4])}
        q[names[5]] = None
        quantized[bits] = q
        (root / "logp" / f"{bits}bit_quantization_logp.pkl").write_bytes(pickle.dumps(q))

    # the release's format: size -> 154 x 154 matrix over the checkpoints, upper triangle, zeros
    # where not computed; step0-step1 is a genuine zero before computed entries of its row
    steps = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, *range(1000, 143001, 1000)]
    weights = {size: np.zeros((len(steps), len(steps))) for size in ("410m", "1b")}
    weights["410m"][0, 2] = 1.5  # (step0, step1) = 0.0 is real
    weights["410m"][steps.index(1000), steps.index(2000)] = 12.5
    weights["410m"][steps.index(1000), steps.index(3000)] = 20.0
    weights["1b"][steps.index(115000), steps.index(117000)] = 6.0
    (root / "weight_distance" / "weight_distance.pkl").write_bytes(pickle.dumps(weights))
    return {
        "texts": texts,
        "names": names,
        "models": {name: model_rows[i] for i, name in enumerate(names)},
        "pretraining": pretraining,
        "layers": layers,
        "quantized": quantized,
        "weights": weights,
        "n_bytes": n_bytes,
    }
