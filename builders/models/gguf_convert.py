"""Convert a GGUF file once into a cached safetensors folder (parsing GGUF in Python is slow)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from llkl_db.builders.models.cache import file_key, file_sha256, models_cache
from llkl_db.builders.models.failures import load_failure

SOURCE_FILE = "llkl-source.json"


def converted_folder(gguf_path: Path) -> Path:
    """Return the cache folder that holds (or will hold) the conversion of this GGUF file."""
    return models_cache() / file_key(gguf_path)


def read_source(folder: Path) -> dict | None:
    """Return the provenance written beside a converted model, or None for an ordinary folder."""
    path = folder / SOURCE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def convert_gguf(gguf_path: str | Path) -> Path:
    """Return a safetensors folder (float32 weights, tokenizer, provenance) for a GGUF file, converting on first use."""
    gguf_path = Path(gguf_path).resolve()
    if not gguf_path.is_file():
        from llkl_db.errors import LlklError

        raise LlklError(f"{gguf_path}: GGUF file not found")
    target = converted_folder(gguf_path)
    if (target / SOURCE_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        _write_conversion(gguf_path, tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / SOURCE_FILE).is_file():  # another process did not win the race either
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_conversion(gguf_path: Path, out: Path) -> None:
    """Dequantize the GGUF with transformers and save model, tokenizer and provenance into `out`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except Exception as exc:  # noqa: BLE001 - every parse failure becomes one line
        raise load_failure(str(gguf_path), exc) from None
    # save_pretrained refuses a GGUF-loaded model while the quantizer is attached.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    source = {
        "format": "gguf",
        "gguf_file": name,
        "gguf_sha256": file_sha256(gguf_path),
        "gguf_size": gguf_path.stat().st_size,
        "converted_dtype": "float32",
    }
    (out / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
