"""Shards and datasets that pass validation, for the contribution-flow tests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from helpers import make_texts, write_dataset

from llkl_db.io.vectors import entry_id


def plausible_loglik(texts: list[str], k: int, seed: int = 0) -> np.ndarray:
    """K x N log-likelihoods of about 1 bit per byte, each model a little different."""
    rng = np.random.default_rng(seed)
    n_bytes = np.array([len(t.encode("utf-8")) for t in texts], dtype=np.float64)
    bpb = 1.0 + 0.2 * rng.standard_normal(len(texts))[None, :] + 0.05 * rng.standard_normal((k, len(texts)))
    return (-n_bytes[None, :] * math.log(2) * np.abs(bpb)).astype(np.float32)


def contributed_rows(k: int, prefix: str = "org/model", with_tokens: list[str] | None = None) -> list[dict]:
    rows = []
    for i in range(k):
        model = f"{prefix}-{i:03d}"
        row = {
            "entry_id": entry_id(model, "main"),
            "model_id": model,
            "revision": "main",
            "model_type": ["llama", "gpt2", "pythia"][i % 3],
            "n_params": 1_000_000 * (i + 1),
            "contributor": "tester",
            "library_versions": "llkl-db=0.1.0",
        }
        if with_tokens is not None:
            row["n_tokens"] = np.array([max(1, len(t.encode("utf-8")) // 4) for t in with_tokens], dtype=np.int32)
        rows.append(row)
    return rows


def good_dataset(root: Path, k: int = 4, n: int = 30, prefix: str = "org/model", seed: int = 0, **kwargs) -> Path:
    """A dataset folder (with llkl-db.json) that passes validation."""
    texts = make_texts(n)
    return write_dataset(
        root,
        plausible_loglik(texts, k, seed),
        rows=contributed_rows(k, prefix, with_tokens=texts),
        texts=texts,
        kind="models",
        **kwargs,
    )


def good_shard(root: Path, k: int = 3, n: int = 30, prefix: str = "new/model", seed: int = 1) -> Path:
    """A build output (no llkl-db.json) that passes validation."""
    good_dataset(root, k, n, prefix, seed)
    (root / "llkl-db.json").unlink()
    return root
