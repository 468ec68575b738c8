"""Model configurations of the runs from scratch (transformers' own classes, randomly initialised)."""

from __future__ import annotations

from .spec import PretrainRun


def build_model(run: PretrainRun, vocab_size: int, bos_token_id: int, eos_token_id: int):
    """A freshly initialised causal LM for ``run`` (the caller seeds torch first)."""
    import transformers as tf

    common = dict(
        vocab_size=vocab_size,
        hidden_size=run.hidden,
        intermediate_size=run.ffn,
        num_hidden_layers=run.layers,
        num_attention_heads=run.heads,
        max_position_embeddings=run.context,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        tie_word_embeddings=True,
    )
    if run.arch == "llama":
        return tf.LlamaForCausalLM(tf.LlamaConfig(num_key_value_heads=run.heads, **common))
    if run.arch == "gpt_neox":
        return tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(**common))
    raise ValueError(f"unknown architecture {run.arch!r}")
