"""One optimizer step on a random batch of windows from a token stream (pretraining and fine-tuning)."""

from __future__ import annotations

import numpy as np
import torch


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    tokens: np.ndarray,
    rng: np.random.Generator,
    batch_size: int,
    length: int,
    lr: float,
) -> float:
    """Draw ``batch_size`` windows of ``length`` tokens, take one clipped step at ``lr``; return the loss."""
    offsets = rng.integers(0, tokens.size - length, size=batch_size)
    batch = torch.from_numpy(np.stack([tokens[o : o + length] for o in offsets]).astype(np.int64))
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())
