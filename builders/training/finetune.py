"""A brief fine-tune of a packaged (or local) model on one domain of the held-out corpora."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from llkl_db.builders.models.hub import card_text
from llkl_db.builders.training.step import train_step
from llkl_db.io.atomic import write_text_atomic

from .checkpoints import save_checkpoint
from .spec import Finetune, TrainingSpec

DONE_FILE = "finetune.json"


def finetune_done(spec: TrainingSpec, ft: Finetune) -> bool:
    return (spec.finetune_dir(ft) / DONE_FILE).is_file()


def base_folder(base: str) -> Path:
    """The folder of the base model: ``offline:NAME`` (a packaged model) or a local folder."""
    if base.startswith("offline:"):
        from llkl_db.builders.models import offline_model

        return offline_model(base.split(":", 1)[1])
    return Path(base)


def finetune(spec: TrainingSpec, ft: Finetune, documents: list[str], threads: int = 2, log=print) -> dict:
    """Fine-tune ``ft.base`` for ``ft.steps`` AdamW steps on random windows of ``documents``
    and save it (with its tokenizer) to the training folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    folder = base_folder(ft.base)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    rng = np.random.default_rng(ft.seed)
    torch.manual_seed(ft.seed)
    need = ft.steps * ft.batch_size * ft.length * 4
    stream: list[int] = []
    for i in rng.permutation(len(documents)):
        stream.extend(tokenizer(documents[i], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
        if len(stream) >= need:
            break
    tokens = np.asarray(stream, dtype=np.int64)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=ft.lr, betas=(0.9, 0.95), weight_decay=0.0)
    started = time.perf_counter()
    losses = []
    for step in range(1, ft.steps + 1):
        lr = ft.lr * min(1.0, step / max(1, ft.warmup))
        losses.append(train_step(model, opt, tokens, rng, ft.batch_size, ft.length, lr))
        log(f"{ft.name}: step {step}/{ft.steps}, loss {losses[-1]:.3f}, {time.perf_counter() - started:.0f} s")
    model.eval()
    out = spec.finetune_dir(ft)
    body = (
        f"{ft.base_model} fine-tuned by `llkl-db train` for {ft.steps} steps on the {ft.domain} documents of the "
        f"offline corpora ({ft.batch_size} x {ft.length} tokens a step, lr {ft.lr}, seed {ft.seed})."
    )
    save_checkpoint(model, tokenizer, out, card_text(ft.base_model, ft.model_id, body))
    record = {
        "model_id": ft.model_id,
        "base_model": ft.base_model,
        "domain": ft.domain,
        "steps": ft.steps,
        "tokens_per_step": ft.batch_size * ft.length,
        "train_loss": losses,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_text_atomic(out / DONE_FILE, json.dumps(record, indent=2) + "\n")
    return record
