"""The implementations of the model variants of the registry (``llkl_db.variants``), one per kind:
``LOADERS`` give the from_pretrained keyword arguments of a variant, ``APPLIERS`` transform the
loaded model. Casts and gguf round trips run anywhere; bitsandbytes needs CUDA.

A new kind (awq, gptq, hqq) is its registry entries plus one function here, registered in
``LOADERS`` (stage "load") or ``APPLIERS`` (stage "post-load").
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from llkl_db.builders.models.devices import DTYPES
from llkl_db.builders.models.quantize import quantize_round_trip
from llkl_db.errors import LlklError
from llkl_db.variants import VARIANTS, Variant, get_variant

Loader = Callable[[Variant, torch.device], dict[str, Any]]
Applier = Callable[[nn.Module, Variant], nn.Module]


def check_variant(variant: str | None) -> Variant | None:
    """The registry entry of ``variant`` (None means no variant); an unknown name is a BadValueError."""
    return None if variant is None else get_variant(variant)


def _cpu_alternatives() -> str:
    return ", ".join(v.name for v in VARIANTS.values() if v.needs is None and v.kind != "cast")


def check_needs(variant: Variant, device: torch.device | str | None = None) -> None:
    """Raise LlklError when this machine (and ``device``) lacks what the variant needs."""
    if variant.needs == "cuda":
        if (device is not None and torch.device(device).type != "cuda") or not torch.cuda.is_available():
            raise LlklError(
                f"variant {variant.name} needs a CUDA GPU ({variant.kind}); on CPU use {_cpu_alternatives()}"
            )


# ---------------------------------------------------------------- loaders (stage "load")


def _cast_kwargs(variant: Variant, device: torch.device) -> dict[str, Any]:
    """Load the weights in the cast dtype (the applier casts a model already loaded)."""
    return {"dtype": DTYPES[variant.dtype]}


def _bnb_kwargs(variant: Variant, device: torch.device) -> dict[str, Any]:
    """As in the KL-scale paper: 8-bit LLM.int8, and 4-bit fp4 with float16 compute."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise LlklError(f"variant {variant.name} needs the bitsandbytes package: pip install 'bitsandbytes>=0.43'")
    from transformers import BitsAndBytesConfig

    compute = DTYPES[variant.dtype]
    if variant.bits == 8:
        config = BitsAndBytesConfig(load_in_8bit=True)
    elif variant.bits == 4:
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=compute)
    else:
        raise LlklError(f"variant {variant.name}: bitsandbytes has no {variant.bits}-bit weights")
    index = device.index if device.index is not None else torch.cuda.current_device()
    return {"quantization_config": config, "dtype": compute, "device_map": {"": index}}


LOADERS: dict[str, Loader] = {"cast": _cast_kwargs, "bnb": _bnb_kwargs}


# ---------------------------------------------------------------- appliers (stage "post-load", and casts of a loaded model)


def _cast(model: nn.Module, variant: Variant) -> nn.Module:
    return model.to(DTYPES[variant.dtype])


def _gguf_round_trip(model: nn.Module, variant: Variant) -> nn.Module:
    quantize_round_trip(model, variant.name)
    return model


APPLIERS: dict[str, Applier] = {"cast": _cast, "gguf": _gguf_round_trip}


# ---------------------------------------------------------------- dispatch


def variant_load_kwargs(variant: str | None, device: torch.device | str = "cuda") -> dict[str, Any]:
    """Return the from_pretrained keyword arguments of a load-time variant (a cast's dtype, a
    bitsandbytes config), else {}. Raises LlklError when the machine lacks what it needs."""
    spec = check_variant(variant)
    if spec is None or spec.stage != "load":
        return {}
    check_needs(spec, device)
    return LOADERS[spec.kind](spec, torch.device(device))


def apply_variant(model: nn.Module, variant: str | None) -> nn.Module:
    """Apply a variant to a loaded model and return it: a cast, or a gguf quantization round trip.

    Variants that only from_pretrained can apply (bitsandbytes: variant_load_kwargs) are an error here.
    """
    spec = check_variant(variant)
    if spec is None:
        return model
    if spec.kind in APPLIERS:
        return APPLIERS[spec.kind](model, spec)
    check_needs(spec)
    raise LlklError(f"variant {spec.name} is applied when the model loads: use load_model(..., variant={spec.name!r})")
