"""Tiny randomly initialised causal LMs of several architectures, with a byte-level tokenizer,
for testing the builders against an independent reference without any download."""

from __future__ import annotations

from pathlib import Path

import torch


def byte_tokenizer(with_bos: bool = True):
    """A real fast tokenizer: one token per UTF-8 byte, plus <bos>/<eos> specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    specials = {"eos_token": "<eos>"}
    if with_bos:
        specials["bos_token"] = "<bos>"
    tok.add_special_tokens(list(specials.values()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, **specials)


def tiny_model(arch: str, vocab_size: int = 300, seed: int = 0) -> torch.nn.Module:
    """A tiny random model: 'gpt2', 'gpt_neox', 'llama' or 'gemma' (large vocab, soft-capping)."""
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, num_hidden_layers=3, num_attention_heads=4)
    if arch == "gpt2":
        config = tf.GPT2Config(
            vocab_size=vocab_size, n_embd=32, n_layer=3, n_head=4, n_positions=256, bos_token_id=None, eos_token_id=None
        )
        model = tf.GPT2LMHeadModel(config)
    elif arch == "gpt_neox":
        config = tf.GPTNeoXConfig(hidden_size=32, intermediate_size=64, max_position_embeddings=256, **common)
        model = tf.GPTNeoXForCausalLM(config)
    elif arch == "llama":
        config = tf.LlamaConfig(
            hidden_size=32, intermediate_size=64, num_key_value_heads=2, max_position_embeddings=256, **common
        )
        model = tf.LlamaForCausalLM(config)
    elif arch == "gemma":
        config = tf.Gemma3TextConfig(
            hidden_size=32,
            intermediate_size=64,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=256,
            final_logit_softcapping=30.0,
            **{**common, "vocab_size": max(vocab_size, 65536)},
        )
        model = tf.Gemma3ForCausalLM(config)
    else:
        raise ValueError(arch)
    return model.eval()


def save_tiny(path: Path, arch: str, with_bos: bool = True) -> Path:
    """Save a tiny model and its tokenizer as a local folder that from_pretrained loads."""
    model = tiny_model(arch)
    model.save_pretrained(path)
    byte_tokenizer(with_bos).save_pretrained(path)
    return path


def reference_loglik(model, tokenizer, text: str, layer: int | None = None) -> tuple[float, int]:
    """The straightforward loop: batch 1, full float64 log-softmax, the first token conditioned
    on BOS (else EOS), one token at a time. Independent of llkl_db.builders."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    seq = torch.tensor([[prefix, *ids]])
    with torch.no_grad():
        if layer is None:
            logits = model(seq).logits[0].double()
        else:
            hidden = model(seq, output_hidden_states=True).hidden_states[layer][0]
            backbone = model.base_model
            norm = next(getattr(backbone, n) for n in ("norm", "ln_f", "final_layer_norm") if hasattr(backbone, n))
            logits = model.get_output_embeddings()(norm(hidden)).double()
            cap = getattr(model.config, "final_logit_softcapping", None)
            if cap:
                logits = torch.tanh(logits / cap) * cap
    logprobs = logits.log_softmax(-1)
    total = 0.0
    for position, target in enumerate(ids):
        total += float(logprobs[position, target])
    return total, len(ids)
