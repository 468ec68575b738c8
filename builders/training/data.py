"""The tokenizer and the token stream of the runs from scratch, made once and cached in the
training folder (a recipe file says what they were made from)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llkl_db.io.atomic import atomic_path, write_text_atomic
from llkl_db.textsets import load_text_set

from .corpus import held_out_chunks, training_documents
from .spec import TrainingSpec
from .tokenizer import load_tokenizer, train_tokenizer

RECIPE_FILE = "recipe.json"


def _recipe(spec: TrainingSpec, texts: str) -> dict:
    text_set = load_text_set(texts)
    return {"vocab_size": spec.vocab_size, "sources": list(spec.sources), "held_out": text_set.sha256}


def prepare_data(spec: TrainingSpec, texts: str = "mini", log=print) -> tuple[np.ndarray, Path]:
    """Train the tokenizer on the held-out corpora and encode them (documents joined by EOS);
    returns the token stream (uint16) and the tokenizer folder. Cached by recipe."""
    recipe = _recipe(spec, texts)
    recipe_file = spec.out / "data" / RECIPE_FILE
    if (
        recipe_file.is_file()
        and json.loads(recipe_file.read_text()) == recipe
        and spec.tokens_file.is_file()
        and (spec.tokenizer_dir / "tokenizer.json").is_file()
    ):
        return np.load(spec.tokens_file), spec.tokenizer_dir
    held, _ = held_out_chunks(load_text_set(texts).path)
    docs = [text for _, text in training_documents(spec.sources, held)]
    log(
        f"training text: {len(docs)} documents, {sum(len(d.encode()) for d in docs) / 1e6:.1f} MB (mini texts held out)"
    )
    tokenizer = train_tokenizer(docs, spec.vocab_size, spec.tokenizer_dir)
    ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    stream = np.fromiter((t for doc in ids for t in (*doc, eos)), dtype=np.uint16)
    spec.tokens_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(spec.tokens_file) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, stream)
    write_text_atomic(recipe_file, json.dumps(recipe, indent=2) + "\n")
    log(f"tokenizer: {spec.vocab_size} tokens; stream: {stream.size:,} tokens")
    return stream, spec.tokenizer_dir


def domain_texts(spec: TrainingSpec, domain: str, texts: str = "mini") -> list[str]:
    """The held-out documents of one domain (for a fine-tune)."""
    held, _ = held_out_chunks(load_text_set(texts).path)
    return [text for _, text in training_documents((domain,), held)]


__all__ = ["domain_texts", "load_tokenizer", "prepare_data"]
