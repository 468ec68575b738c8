"""A small byte-level BPE tokenizer trained on the training text (deterministic for given text)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

BOS, EOS = "<|bos|>", "<|eos|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int, out: Path):
    """Train a byte-level BPE of ``vocab_size`` tokens (BOS and EOS included), save it as a
    transformers tokenizer folder at ``out`` and return it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS)
    fast.save_pretrained(out)
    return fast


def load_tokenizer(folder: Path):
    """The tokenizer saved by :func:`train_tokenizer`."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(folder)
