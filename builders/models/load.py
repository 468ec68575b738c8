"""load_model: any causal LM that transformers loads, from a Hub id, a local folder or a GGUF file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llkl_db.builders.models.devices import dtype_name, resolve_device, resolve_dtype
from llkl_db.builders.models.failures import load_failure
from llkl_db.builders.models.gguf_convert import convert_gguf, read_source
from llkl_db.builders.models.hub import folder_base_model, hub_info, snapshot_sha
from llkl_db.builders.models.loaded import LoadedModel
from llkl_db.builders.models.variants import apply_variant, check_variant, variant_load_kwargs
from llkl_db.errors import LlklError

__all__ = ["LoadedModel", "load_model"]

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class _Located:
    """Where from_pretrained reads, and the provenance known before loading."""

    path: str
    revision: str | None
    model_id: str
    model_sha: str | None
    kind: str
    base_model: str | None = None
    gguf_file: str | None = None


def _locate_gguf(gguf_path: Path, shown: str) -> _Located:
    """Convert (once) a GGUF file and describe the cached folder."""
    folder = convert_gguf(gguf_path)
    source = read_source(folder) or {}
    sha = source.get("gguf_sha256")
    return _Located(str(folder), None, shown, f"sha256:{sha}" if sha else None, "gguf", gguf_file=gguf_path.name)


def _locate_folder(folder: Path) -> _Located:
    """Describe a local model folder (a converted GGUF keeps its GGUF provenance)."""
    source = read_source(folder)
    if source and source.get("format") == "gguf":
        name, sha = source["gguf_file"], source.get("gguf_sha256")
        return _Located(str(folder), None, name, f"sha256:{sha}" if sha else None, "gguf", gguf_file=name)
    real = folder.resolve()
    return _Located(str(real), None, str(real), snapshot_sha(real), "folder", folder_base_model(real))


def _locate_hub(repo_id: str, revision: str | None, gguf_file: str | None) -> _Located:
    """Resolve a Hub repository and revision to a commit (pinned for model and tokenizer alike)."""
    info = hub_info(repo_id, revision)
    if gguf_file:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(repo_id, gguf_file, revision=info.sha or revision))
        located = _locate_gguf(path, f"{repo_id}/{gguf_file}")
        return _Located(located.path, revision or "main", repo_id, info.sha, "gguf", info.base_model, gguf_file)
    return _Located(repo_id, revision or "main", repo_id, info.sha, "hub", info.base_model)


def _locate(source: str, revision: str | None, gguf_file: str | None) -> _Located:
    """Decide whether a source is a GGUF file, a local folder or a Hub id, and describe it."""
    path = Path(source).expanduser()
    if gguf_file and path.is_dir():
        return _locate_gguf(path / gguf_file, gguf_file)
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise LlklError(f"{source}: a file that is not .gguf; give a model folder, a .gguf file or a Hub id")
        return _locate_gguf(path, path.name)
    if path.is_dir():
        return _locate_folder(path)
    if source.startswith((".", "/", "~")) or source.count("/") > 1 or not HUB_ID.match(source):
        raise LlklError(f"{source}: no such file or folder, and not a Hub model id")
    return _locate_hub(source, revision, gguf_file)


def _from_pretrained(located: _Located, dtype: torch.dtype, trust_remote_code: bool, extra: dict[str, Any]) -> tuple:
    """Load model and tokenizer with transformers (the one place that calls from_pretrained)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    revision = None if located.kind != "hub" else (located.model_sha or located.revision)
    kwargs: dict[str, Any] = {"dtype": dtype, **extra}
    model = AutoModelForCausalLM.from_pretrained(
        located.path, revision=revision, trust_remote_code=trust_remote_code, **kwargs
    )
    tokenizer = AutoTokenizer.from_pretrained(located.path, revision=revision, trust_remote_code=trust_remote_code)
    return model, tokenizer


def _n_layers(config: Any) -> int | None:
    """Return the number of transformer blocks from a (text) config."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(text, key, None)
        if isinstance(value, int):
            return value
    return None


def load_model(
    source: str,
    revision: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    variant: str | None = None,
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer in eval mode, apply a variant, and record provenance.

    `source` is a Hub id (with `revision`), a local folder, or a .gguf file (converted once to a cached
    safetensors folder). dtype "auto" is float32 on CPU and bfloat16 on CUDA; a variant "bfloat16"/"float16"
    overrides it. Any failure raises LlklError with a one-line reason.
    """
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    spec = check_variant(variant)
    extra = variant_load_kwargs(variant, dev)  # casts: their dtype; bitsandbytes: its config (raises on CPU)
    torch_dtype = extra.pop("dtype", torch_dtype)
    try:
        located = _locate(source, revision, gguf_file)
        model, tokenizer = _from_pretrained(located, torch_dtype, trust_remote_code, extra)
    except Exception as exc:  # noqa: BLE001 - a model that will not load is one line, never a traceback
        raise load_failure(source, exc) from None
    model.eval()
    if spec is None or spec.stage == "post-load":
        apply_variant(model, variant)  # gguf round trips run on CPU, before the move
    if "device_map" not in extra:
        model.to(dev)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=located.model_id,
        revision=located.revision,
        model_sha=located.model_sha,
        n_params=int(model.num_parameters()),
        n_layers=_n_layers(model.config),
        dtype=dtype_name(torch_dtype),
        device=str(dev),
        tokenizer_name=located.model_id,
        model_type=str(getattr(model.config, "model_type", "")),
        base_model=located.base_model,
        variant=variant,
        source_kind=located.kind,
        gguf_file=located.gguf_file,
    )
