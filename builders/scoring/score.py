"""Score a list of texts with a causal LM: log-likelihood per text, for the output and for
logit-lens layers, from one forward pass per batch.

Windows are sorted by length and padded on the right with an attention mask, so padding never
reaches a real token; only the hidden states of scored positions go through the head.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from llkl_db.builders.scoring.batching import plan_batches
from llkl_db.builders.scoring.head import OutputHead
from llkl_db.builders.scoring.progress import TokenProgress
from llkl_db.builders.scoring.windows import Window, text_windows
from llkl_db.errors import BadValueError, LlklError

DEFAULT_MAX_LENGTH = 2048
BOS_POLICIES = ("auto", "skip-first")  # auto: BOS if the tokenizer has one, else EOS


@dataclass
class ScoreResult:
    """Log-likelihoods (nats, float64) keyed by layer (None = the model's output)."""

    loglik: dict[int | None, np.ndarray]
    n_tokens: np.ndarray
    bos_policy: str
    seconds: float
    batch_size: int

    @property
    def tokens_per_second(self) -> float:
        return float(self.n_tokens.sum()) / self.seconds if self.seconds > 0 else float("nan")


def prefix_token(tokenizer) -> tuple[int, str]:
    """The token that conditions a text's first token: BOS if the tokenizer has one, else EOS."""
    if tokenizer.bos_token_id is not None:
        return int(tokenizer.bos_token_id), "bos"
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id), "eos"
    raise LlklError("the tokenizer has neither a BOS nor an EOS token to condition the first token on")


def context_length(model, max_length: int | None) -> int:
    """The window length: the model's context, capped by ``max_length``."""
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    limit = int(limit) if limit else DEFAULT_MAX_LENGTH
    return min(limit, max_length or DEFAULT_MAX_LENGTH)


def check_layers(model, layers: Sequence[int]) -> list[int]:
    """Validate logit-lens layer indices against the model (0 = embeddings .. n_layers - 1)."""
    n_layers = int(model.config.num_hidden_layers)
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise LlklError(
            f"layer(s) {bad} out of range: this model has layers 0..{n_layers - 1} (its output is the default)"
        )
    return sorted(set(layers))


def score_texts(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    layers: Sequence[int] = (),
    batch_size: int | None = None,
    max_length: int | None = None,
    stride: int | None = None,
    progress: bool = True,
    bos_policy: str = "auto",
) -> ScoreResult:
    """Log-likelihood of each text under ``model`` (every token once), and under the logit lens
    of each of ``layers``. ``batch_size`` None picks one for the device and halves it on
    out-of-memory without losing finished batches. ``bos_policy`` 'skip-first' scores as the
    2025 code did for a tokenizer without BOS: no prefix, the first token not scored."""
    if bos_policy not in BOS_POLICIES:
        raise BadValueError("bos_policy", bos_policy, f"expected one of {', '.join(BOS_POLICIES)}")
    layers = check_layers(model, layers)
    if bos_policy == "skip-first":
        prefix_id = None
    else:
        prefix_id, bos_policy = prefix_token(tokenizer)
    length = context_length(model, max_length)
    stride = stride or max(1, length // 2)
    token_ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    windows = [w for i, ids in enumerate(token_ids) for w in text_windows(i, ids, prefix_id, length, stride)]
    device = next(model.parameters()).device
    head = OutputHead.of(model)
    sums = {key: np.zeros(len(texts)) for key in [None, *layers]}
    n_tokens = np.array([len(ids) for ids in token_ids], dtype=np.int64)
    if prefix_id is None:
        n_tokens = np.maximum(n_tokens - 1, 0)
    size = batch_size or (64 if device.type == "cuda" else 8)

    started = time.perf_counter()
    with TokenProgress(int(n_tokens.sum()), enabled=progress) as bar, torch.inference_mode():
        pending = plan_batches(windows, size)
        while pending:
            batch = pending.pop(0)
            try:
                _score_batch(model, head, batch, layers, sums, device)
            except torch.OutOfMemoryError:
                if len(batch) == 1:
                    raise BadValueError("max_length", length, "out of memory on a single window; lower it") from None
                size = max(1, len(batch) // 2)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                pending = plan_batches(batch, size) + pending
                continue
            bar.advance(sum(w.n_scored for w in batch))
    seconds = time.perf_counter() - started
    return ScoreResult(loglik=sums, n_tokens=n_tokens, bos_policy=bos_policy, seconds=seconds, batch_size=size)


def _score_batch(model, head: OutputHead, batch: list[Window], layers: list[int], sums: dict, device) -> None:
    width = max(len(w.input_ids) for w in batch)
    input_ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    targets = torch.zeros((len(batch), width), dtype=torch.long)
    scored = torch.zeros((len(batch), width), dtype=torch.bool)
    for row, w in enumerate(batch):
        n = len(w.input_ids)
        input_ids[row, :n] = torch.tensor(w.input_ids)
        targets[row, :n] = torch.tensor(w.targets)
        mask[row, :n] = 1
        scored[row, w.score_from : n] = True
    out = model.base_model(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        output_hidden_states=bool(layers),
        use_cache=False,
    )
    scored = scored.to(device)
    flat_targets = targets.to(device)[scored]
    owner = np.repeat([w.text_index for w in batch], [w.n_scored for w in batch])
    per_key = {None: head.target_logprobs(out.last_hidden_state[scored], flat_targets, lens=False)}
    for layer in layers:
        per_key[layer] = head.target_logprobs(out.hidden_states[layer][scored], flat_targets, lens=True)
    for key, logprobs in per_key.items():
        np.add.at(sums[key], owner, logprobs.double().cpu().numpy())
