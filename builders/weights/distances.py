"""The squared parameter distance ||theta_b - theta_a||^2 between two checkpoint folders,
streamed tensor by tensor from their safetensors files and summed in float64.

Only one tensor of each checkpoint is in memory at a time (safetensors reads a tensor from the
memory-mapped file on demand), so checkpoints far larger than memory are compared alike.
"""

from __future__ import annotations

import json
from pathlib import Path

from llkl_db.errors import LlklError

INDEX_FILE = "model.safetensors.index.json"


def tensor_files(folder: Path) -> dict[str, Path]:
    """Map each tensor name of a checkpoint folder to the safetensors file that holds it."""
    from safetensors import safe_open

    folder = Path(folder)
    index = folder / INDEX_FILE
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: folder / file for name, file in weight_map.items()}
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise LlklError(f"{folder}: no safetensors files (weight distances need safetensors checkpoints)")
    out: dict[str, Path] = {}
    for file in files:
        with safe_open(file, framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                out[name] = file
    return out


def sq_distance(a: Path, b: Path) -> tuple[float, int]:
    """Sum over all parameters of (b - a)^2 in float64, and the number of parameters compared.
    The two checkpoints must hold the same tensors with the same shapes."""
    import torch
    from safetensors import safe_open

    files_a, files_b = tensor_files(a), tensor_files(b)
    if set(files_a) != set(files_b):
        only = sorted(set(files_a) ^ set(files_b))[:3]
        raise LlklError(f"{a} and {b} hold different tensors (e.g. {', '.join(only)})")
    total = 0.0
    count = 0
    handles: dict[Path, object] = {}
    try:
        for name in sorted(files_a):
            for file in (files_a[name], files_b[name]):
                if file not in handles:
                    handles[file] = safe_open(file, framework="pt").__enter__()
            ta = handles[files_a[name]].get_tensor(name)
            tb = handles[files_b[name]].get_tensor(name)
            if ta.shape != tb.shape:
                raise LlklError(f"{name}: shape {tuple(ta.shape)} in {a}, {tuple(tb.shape)} in {b}")
            diff = tb.to(torch.float64) - ta.to(torch.float64)
            total += float(torch.dot(diff.reshape(-1), diff.reshape(-1)))
            count += diff.numel()
            del ta, tb, diff
    finally:
        for handle in handles.values():
            handle.__exit__(None, None, None)
    return total, count
