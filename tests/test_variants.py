"""The variant registry (torch-free), and bad values shown under their command-line flags."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from llkl_db.cli.errors import FLAGS, message
from llkl_db.errors import BadValueError, LlklError
from llkl_db.variants import DTYPE_NAMES, VARIANTS, describe_variant, get_variant, variant_setting

ROOT = Path(__file__).resolve().parent.parent


def test_registry_entries_are_consistent():
    assert list(VARIANTS) == ["bfloat16", "float16", "q8_0", "q5_0", "q4_0", "bnb-8bit", "bnb-4bit"]
    for name, v in VARIANTS.items():
        assert v.name == name == name.lower()
        assert v.kind in ("cast", "gguf", "bnb") and v.stage in ("load", "post-load")
        assert v.bits in (4, 5, 8, 16) and v.description
        assert (v.gguf_type is not None) == (v.kind == "gguf")
        if v.kind == "cast":
            assert v.dtype == name and v.bits == 16
        if v.kind == "bnb":
            assert v.needs == "cuda" and v.stage == "load"
    assert [VARIANTS[n].bits for n in ("q8_0", "q5_0", "q4_0", "bnb-8bit", "bnb-4bit")] == [8, 5, 4, 8, 4]
    assert VARIANTS["q5_0"].gguf_type == "Q5_0"


def test_unknown_variant_is_a_bad_value():
    assert get_variant("q4_0") is VARIANTS["q4_0"]
    with pytest.raises(BadValueError) as caught:
        get_variant("Q4_0")
    assert caught.value.param == "variant" and caught.value.value == "Q4_0"
    assert str(caught.value) == f"variant 'Q4_0': unknown variant; known: {', '.join(VARIANTS)}"


def test_names_outside_the_registry_are_described_from_the_name():
    assert describe_variant("Q8_0") is VARIANTS["q8_0"]
    assert [describe_variant(n).bits for n in ("q4_k_m", "int8", "nf4", "fp8", "bnb-4bit")] == [4, 8, 4, 8, 4]
    assert describe_variant("float32").kind == "cast" and describe_variant("float32").bits == 32
    assert describe_variant("pruned").bits == 0
    assert variant_setting("q4_k_m") == "4-bit quantization" and variant_setting("int8") == "8-bit quantization"
    assert variant_setting("float32") == "float32 cast" and variant_setting("BFloat16") == "bfloat16 cast"
    assert variant_setting("pruned") == "pruned variant"
    assert set(DTYPE_NAMES) >= {v.dtype for v in VARIANTS.values() if v.dtype}


def test_the_registry_imports_nothing_heavy():
    code = (
        "import sys, llkl_db.variants; "
        "heavy = {'torch', 'transformers', 'numpy', 'polars', 'gguf'} & set(sys.modules); "
        "sys.exit(sorted(heavy) or 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_bad_values_are_shown_under_their_flag():
    assert message(BadValueError("batch_size", "0", "expected auto or a positive integer")) == (
        "--batch-size '0': expected auto or a positive integer"
    )
    assert message(BadValueError("no_flag", 3, "too small")) == "no_flag 3: too small"
    assert message(LlklError("plain")) == "plain"


def test_every_bad_value_the_code_raises_has_a_flag():
    """Library and CLI errors name parameters; the CLI must know the flag of each."""
    raised = set()
    for folder in ("llkl_db", "builders", "cli"):
        for path in (ROOT / folder).rglob("*.py"):
            raised |= set(re.findall(r'BadValueError\(\s*"(\w+)"', path.read_text("utf-8")))
    assert raised and raised <= set(FLAGS), sorted(raised - set(FLAGS))
