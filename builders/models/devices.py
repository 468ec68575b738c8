"""Resolve the "auto" device and dtype of a build."""

from __future__ import annotations

import torch

from llkl_db.errors import LlklError
from llkl_db.variants import DTYPE_NAMES

DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in DTYPE_NAMES}


def resolve_device(device: str = "auto") -> torch.device:
    """Return cuda when available for "auto", else the device asked for (checked to exist)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise LlklError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LlklError(f"device {device!r} asked for, but CUDA is not available on this machine")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Return float32 on CPU for "auto", bfloat16 on CUDA when supported (else float16), or the dtype named."""
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in DTYPES:
        raise LlklError(f"unknown dtype {dtype!r} (use auto, {', '.join(DTYPES)})")
    return DTYPES[dtype]


def dtype_name(dtype: torch.dtype) -> str:
    """Return "float32" for torch.float32 and so on."""
    return str(dtype).removeprefix("torch.")
