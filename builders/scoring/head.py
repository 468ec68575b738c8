"""The model's output head, applied by us in token chunks so that [batch, tokens, vocab] logits
never exist: the target's log-probability is its logit minus a float32 logsumexp."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llkl_db.errors import LlklError

FINAL_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "final_norm")


@dataclass
class OutputHead:
    """Final norm, unembedding and the logit transforms of one model."""

    norm: torch.nn.Module | None
    weight: torch.Tensor
    bias: torch.Tensor | None
    softcap: float | None
    scale: float

    @classmethod
    def of(cls, model: torch.nn.Module) -> OutputHead:
        """Find the pieces of ``model``'s head; logit transforms follow the model's config."""
        head = model.get_output_embeddings()
        if head is None or not hasattr(head, "weight"):
            raise LlklError(f"{type(model).__name__}: no output embedding to score with")
        backbone = model.base_model
        norm = next((getattr(backbone, n) for n in FINAL_NORM_NAMES if hasattr(backbone, n)), None)
        config = model.config
        scale = 1.0
        if getattr(config, "logit_scale", None):  # Cohere multiplies logits
            scale *= float(config.logit_scale)
        if getattr(config, "logits_scaling", None):  # Granite divides them
            scale /= float(config.logits_scaling)
        return cls(
            norm=norm,
            weight=head.weight,
            bias=getattr(head, "bias", None),
            softcap=getattr(config, "final_logit_softcapping", None) or None,
            scale=scale,
        )

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits of final hidden states, in float32, transformed like the model's own."""
        out = torch.nn.functional.linear(hidden, self.weight, self.bias).float()
        if self.scale != 1.0:
            out = out * self.scale
        if self.softcap:
            out = torch.tanh(out / self.softcap) * self.softcap
        return out

    def lens(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logit lens: an intermediate hidden state through the final norm, then the head."""
        if self.norm is None:
            raise LlklError("this model has no recognised final norm; logit-lens layers are unavailable")
        return self.logits(self.norm(hidden))

    def target_logprobs(
        self, hidden: torch.Tensor, targets: torch.Tensor, lens: bool, chunk_bytes: int = 64 << 20
    ) -> torch.Tensor:
        """log p(target) for each row of ``hidden`` [T, H], computing at most ``chunk_bytes`` of logits at once."""
        vocab = self.weight.shape[0]
        rows = max(1, chunk_bytes // (4 * vocab))
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], rows):
            h = hidden[start : start + rows]
            logits = self.lens(h) if lens else self.logits(h)  # a fresh float32 tensor: safe to overwrite
            target = logits.gather(1, targets[start : start + rows, None])[:, 0]
            peak = logits.amax(dim=-1)
            total = logits.sub_(peak[:, None]).exp_().sum(dim=-1)  # logsumexp in place, in float32
            out[start : start + rows] = target - (total.log_() + peak)
        return out
