"""Model variants that are part of an entry id: casts, gguf round trips (CPU), bitsandbytes (CUDA)."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
from torch import nn

from llkl_db.builders.models.devices import DTYPES
from llkl_db.builders.models.quantize import GGUF_TYPES, quantize_round_trip
from llkl_db.errors import LlklError

CAST_VARIANTS = ("bfloat16", "float16")
BNB_VARIANTS = ("bnb-8bit", "bnb-4bit")
VARIANTS = (*CAST_VARIANTS, *GGUF_TYPES, *BNB_VARIANTS)


def check_variant(variant: str | None) -> None:
    """Raise LlklError for a variant name that is not one of VARIANTS (None means no variant)."""
    if variant is not None and variant not in VARIANTS:
        raise LlklError(f"unknown variant {variant!r} (use {', '.join(VARIANTS)})")


def variant_load_kwargs(variant: str | None, device: torch.device | str = "cuda") -> dict[str, Any]:
    """Return the from_pretrained keyword arguments a load-time variant needs (bitsandbytes), else {}.

    As in the KL-scale paper: 8-bit LLM.int8, and 4-bit fp4 with float16 compute; float16 elsewhere.
    """
    check_variant(variant)
    if variant not in BNB_VARIANTS:
        return {}
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        raise LlklError(f"variant {variant} needs a CUDA GPU (bitsandbytes); on CPU use q8_0, q5_0 or q4_0")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise LlklError(f"variant {variant} needs the bitsandbytes package: pip install 'bitsandbytes>=0.43'")
    from transformers import BitsAndBytesConfig

    if variant == "bnb-8bit":
        config = BitsAndBytesConfig(load_in_8bit=True)
    else:
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.float16)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return {"quantization_config": config, "dtype": torch.float16, "device_map": {"": index}}


def apply_variant(model: nn.Module, variant: str | None) -> nn.Module:
    """Apply a post-load variant in place and return the model: a cast, or a gguf quantization round trip.

    bitsandbytes variants happen at load time (variant_load_kwargs); asking for them here is an error.
    """
    check_variant(variant)
    if variant is None:
        return model
    if variant in CAST_VARIANTS:
        return model.to(DTYPES[variant])
    if variant in GGUF_TYPES:
        quantize_round_trip(model, variant)
        return model
    if not torch.cuda.is_available():
        raise LlklError(f"variant {variant} needs a CUDA GPU (bitsandbytes); on CPU use q8_0, q5_0 or q4_0")
    raise LlklError(f"variant {variant} is applied when the model loads: use load_model(..., variant={variant!r})")
