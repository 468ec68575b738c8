"""Quantization round trips (quantize, then dequantize) with the gguf package's numpy reference quantizers."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from llkl_db.errors import LlklError
from llkl_db.variants import VARIANTS

# Variant name -> gguf quantization type, from the registry.
GGUF_TYPES = {v.name: v.gguf_type for v in VARIANTS.values() if v.kind == "gguf"}
CHUNK_ELEMENTS = 1 << 24  # 64 MiB of float32 per chunk bounds the extra memory


def _conv1d_type() -> type | None:
    """Return transformers' Conv1D (GPT-2's transposed Linear), or None without transformers."""
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is part of the build extra
        return None
    return Conv1D


def _matrices(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Return (name, view with quantization rows last) of every 2-D Linear/Embedding/Conv1D weight, shared ones once."""
    conv1d = _conv1d_type()
    kinds = (nn.Linear, nn.Embedding) + ((conv1d,) if conv1d else ())
    seen: set[int] = set()
    out: list[tuple[str, torch.Tensor]] = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(module, kinds) or not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            continue
        if id(weight) in seen:
            continue
        seen.add(id(weight))
        # GPT-2's Conv1D stores [in, out]; GGUF blocks run along the input dimension, as in nn.Linear's [out, in].
        transposed = conv1d is not None and isinstance(module, conv1d)
        out.append((f"{name}.weight", weight.data.T if transposed else weight.data))
    return out


def round_trip_matrix(matrix: torch.Tensor, variant: str) -> None:
    """Replace a 2-D tensor in place by its quantize-dequantize round trip, in row chunks of bounded size."""
    import gguf

    qtype = getattr(gguf.GGMLQuantizationType, GGUF_TYPES[variant])
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    n_rows, n_cols = matrix.shape
    if n_cols % block:
        raise LlklError(
            f"variant {variant}: weight rows of {n_cols} values are not a multiple of the block size {block}"
        )
    step = max(1, CHUNK_ELEMENTS // n_cols)
    with torch.no_grad():
        for start in range(0, n_rows, step):
            part = matrix[start : start + step]
            values = np.ascontiguousarray(part.detach().to("cpu", torch.float32).numpy())
            restored = gguf.quants.dequantize(gguf.quants.quantize(values, qtype), qtype)
            part.copy_(torch.from_numpy(restored.reshape(values.shape)))


def quantize_round_trip(model: nn.Module, variant: str) -> list[str]:
    """Round-trip every 2-D Linear/Embedding weight of a model (tied weights once); return the names done."""
    if variant not in GGUF_TYPES:
        raise LlklError(f"unknown gguf round-trip variant {variant!r} (use {', '.join(GGUF_TYPES)})")
    done = []
    for name, matrix in _matrices(model):
        round_trip_matrix(matrix, variant)
        done.append(name)
    return done
