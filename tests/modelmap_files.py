"""Files in the 2025 paper's published formats (shimo-lab/modelmap, 1000models/data), written here:
texts-10k-pile.jsonl, raw_log-likelihood_1018.pkl and model-data-1018.pkl, with a benchmark
score that the vectors really predict."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np

TYPES = ["llama-2", "mistral", "qwen2", "gemma", "gpt2", "pythia"]
SCORES = ["ARC", "HellaSwag", "MMLU", "TruthfulQA", "Winogrande", "GSM8K"]


def pile_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ["the", "model", "data", "text", "pile", "code", "law", "arxiv", "python", "cell"]
    return [f"{i} " + " ".join(rng.choice(words, size=int(rng.integers(40, 120)))) for i in range(n)]


def write_modelmap(folder: Path, k: int = 36, n: int = 40, seed: int = 0, protocol: int = 4) -> dict:
    """Write the three files into ``folder``; return the arrays and names used."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    texts = pile_texts(n, seed)
    with open(folder / "texts-10k-pile.jsonl", "w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            item = {"index": i, "pile_idx": 1000 + i, "chunk_idx": i % 3, "text": text, "pile_set_name": "Pile-CC"}
            f.write(json.dumps(item) + "\n")
    n_bytes = np.array([len(t.encode()) for t in texts], dtype=np.float64)
    difficulty = 1.0 + 0.2 * rng.standard_normal(n)
    direction = rng.standard_normal(n)
    latent = rng.standard_normal(k)
    names = [f"org-{i % 7}/model-{i:03d}" for i in range(k)]
    types = [TYPES[i % len(TYPES)] for i in range(k)]
    raw = {}
    data = []
    for i, name in enumerate(names):
        bpb = difficulty + 0.05 * latent[i] * direction + 0.01 * rng.standard_normal(n)
        vector = -n_bytes * math.log(2) * np.abs(bpb) - 3.0 * rng.standard_normal()
        raw[name] = vector.astype(np.float64)
        item = {
            "model_name": name,
            "model_type": types[i],
            "model_size": [0.5, 1.1, 7, 13][i % 4],
            "created_at": "2024-04-20T00:53:57+00:00",
            "downloads": int(rng.integers(10, 10_000)),
            "tags": ["transformers", "text-generation", f"base_model:{names[0]}", f"base_model:finetune:{names[0]}"]
            if i % 5 == 1
            else ["transformers", "region:us"],
            "log-likelihood-10k": vector.copy(),
            "mean_logp": np.float64(vector.mean()),
        }
        for j, score in enumerate(SCORES):
            item[f"score_v1_{score}"] = float(50 + 10 * latent[i] + 2 * j + rng.standard_normal())
        item["score_v1_6-taskmean"] = float(np.mean([item[f"score_v1_{s}"] for s in SCORES]))
        data.append(item)
    (folder / "raw_log-likelihood_1018.pkl").write_bytes(pickle.dumps(raw, protocol=protocol))
    (folder / "model-data-1018.pkl").write_bytes(pickle.dumps(data, protocol=protocol))
    return {"texts": texts, "raw": raw, "data": data, "names": names, "latent": latent}
