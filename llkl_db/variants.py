"""The registry of model variants: what each variant name in an entry id means (torch-free).

A variant is part of an entry id (``model@revision#variant``): the same weights, cast to a
lower precision or quantized. The builders (``llkl_db.builders.models.variants``) implement one
loader or applier per *kind*; the analyses read bit widths and kinds from here. Adding a variant
of an existing kind is one line in ``VARIANTS`` (and its test); a new kind also needs its loader
or applier in the builders.

    >>> get_variant("q4_0").bits
    4
    >>> variant_setting("bnb-8bit")
    '8-bit quantization'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from llkl_db.errors import BadValueError

Kind = Literal["cast", "gguf", "bnb"]  # later "awq", "gptq", "hqq"
Stage = Literal["load", "post-load"]

# Floating-point dtypes a build may run in (``--dtype``), and the casts among the variants.
DTYPE_NAMES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Variant:
    """One variant: ``kind`` selects its implementation, ``stage`` when it applies ("load": keyword
    arguments of from_pretrained; "post-load": a transformation of the loaded model), ``bits`` the
    weight bit width, ``dtype`` the compute dtype (None: the build's dtype), ``needs`` what it
    requires of the machine ("cuda"), ``gguf_type`` the gguf quantization type of a gguf variant."""

    name: str
    kind: str
    stage: str
    bits: int
    dtype: str | None
    description: str
    needs: str | None = None
    gguf_type: str | None = None


def _gguf(name: str, bits: int) -> Variant:
    return Variant(
        name, "gguf", "post-load", bits, None, f"GGUF {name.upper()} round trip (quantize, dequantize)",
        gguf_type=name.upper(),
    )  # fmt: skip


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("bfloat16", "cast", "load", 16, "bfloat16", "weights and compute in bfloat16"),
        Variant("float16", "cast", "load", 16, "float16", "weights and compute in float16"),
        _gguf("q8_0", 8),
        _gguf("q5_0", 5),
        _gguf("q4_0", 4),
        Variant("bnb-8bit", "bnb", "load", 8, "float16", "bitsandbytes LLM.int8", needs="cuda"),
        Variant("bnb-4bit", "bnb", "load", 4, "float16", "bitsandbytes 4-bit fp4, float16 compute", needs="cuda"),
    )
}

# Bit widths in names the registry does not hold (imported data): q4_k, int8, nf4, fp8, bnb-4bit...
_BITS = re.compile(r"(?:^q|bnb-|int|nf|fp)(\d)")


def get_variant(name: str) -> Variant:
    """The registry entry of ``name``; an unknown name is a :class:`BadValueError`."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise BadValueError("variant", name, f"unknown variant; known: {', '.join(VARIANTS)}") from None


def describe_variant(name: str) -> Variant:
    """The registry entry of ``name`` (any case), else what the name says: a dtype name is a cast,
    a name like q4_k, int8 or nf4 a quantization of that bit width, anything else of kind
    "unknown" with bits 0. For variant names in imported data."""
    v = name.lower()
    if v in VARIANTS:
        return VARIANTS[v]
    if v in DTYPE_NAMES:
        return Variant(v, "cast", "load", int(v[-2:]), v, f"weights and compute in {v}")
    match = _BITS.search(v)
    if match:
        return Variant(name, "quantized", "post-load", int(match.group(1)), None, f"{match.group(1)}-bit quantization")
    return Variant(name, "unknown", "post-load", 0, None, "not in the registry")


def variant_setting(name: str) -> str:
    """The scale setting a variant's pair with its original belongs to: '8-bit quantization',
    'bfloat16 cast', ..., or 'NAME variant' for a name of unknown bit width."""
    v = describe_variant(name)
    if v.kind == "cast":
        return f"{v.dtype} cast"
    if v.bits:
        return f"{v.bits}-bit quantization"
    return f"{name} variant"
