"""One run from scratch: seeded initialisation and data order, AdamW with warm-up and cosine
decay, a checkpoint folder at every Pythia-like step (step0 is the initialisation)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from llkl_db.builders.training.step import train_step
from llkl_db.io.atomic import write_text_atomic

from .checkpoints import save_checkpoint
from .models import build_model
from .schedule import lr_at
from .spec import PretrainRun, TrainingSpec
from .tokenizer import load_tokenizer

DONE_FILE = "run.json"


def run_done(spec: TrainingSpec, run: PretrainRun) -> bool:
    return (spec.run_dir(run) / DONE_FILE).is_file()


def pretrain(spec: TrainingSpec, run: PretrainRun, tokens_file: Path, threads: int = 1, log=print) -> dict:
    """Train ``run`` and save its checkpoints; returns the run record (also written as run.json).
    A run that was interrupted starts again from step 0 (it is deterministic and short)."""
    import torch

    torch.set_num_threads(threads)
    pre = spec.pretrain
    tokens = np.load(tokens_file)
    tokenizer = load_tokenizer(spec.tokenizer_dir)
    torch.manual_seed(run.seed)
    model = build_model(run, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    model.train()
    rng = np.random.default_rng(run.seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=pre.peak_lr,
        betas=(0.9, 0.95),
    )
    save_at = set(pre.steps)
    started = time.perf_counter()
    losses: dict[int, float] = {}
    recent: list[float] = []
    save_checkpoint(model, tokenizer, spec.checkpoint_dir(run, 0))
    for step in range(1, pre.final_step + 1):
        lr = lr_at(step, pre.peak_lr, pre.warmup, pre.final_step, pre.final_fraction)
        recent.append(train_step(model, opt, tokens, rng, pre.batch_size, pre.length, lr))
        if step in save_at:
            losses[step] = float(np.mean(recent))
            recent = []
            model.eval()
            save_checkpoint(model, tokenizer, spec.checkpoint_dir(run, step))
            model.train()
            log(
                f"{run.run_name}: step {step}, loss {losses[step]:.3f} nats/token, {time.perf_counter() - started:.0f} s"
            )
    record = {
        "model_id": run.model_id,
        "n_params": int(model.num_parameters()),
        "steps": pre.steps,
        "train_loss": losses,
        "tokens_per_step": pre.batch_size * pre.length,
        "seconds": round(time.perf_counter() - started, 1),
        "threads": threads,
    }
    write_text_atomic(spec.run_dir(run) / DONE_FILE, json.dumps(record, indent=2) + "\n")
    return record
