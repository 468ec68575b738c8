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

    def logits(self, hidden: torch.Tensor, vocab: slice = slice(None)) -> torch.Tensor:
        """Logits (of the ``vocab`` rows of the unembedding) of final hidden states, in float32,
        transformed like the model's own."""
        bias = None if self.bias is None else self.bias[vocab]
        out = torch.nn.functional.linear(hidden, self.weight[vocab], bias).float()
        if self.scale != 1.0:
            out = out * self.scale
        if self.softcap:
            out = torch.tanh(out / self.softcap) * self.softcap
        return out

    def final_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        """The model's final norm, which the logit lens applies to an intermediate hidden state."""
        if self.norm is None:
            raise LlklError("this model has no recognised final norm; logit-lens layers are unavailable")
        return self.norm(hidden)

    def target_logprobs(
        self,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        lens: bool,
        chunk_bytes: int = 64 << 20,
        token_block: int = 1024,
    ) -> torch.Tensor:
        """log p(target) for each row of ``hidden`` [T, H]: the target's logit minus a running
        float32 logsumexp over slices of the vocabulary, at most ``chunk_bytes`` of logits at a
        time. Blocks of ``token_block`` rows share each slice, so the unembedding (671 MB for
        Gemma3 in float32) is read once per block, not once per few rows."""
        vocab_size = self.weight.shape[0]
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        for t0 in range(0, hidden.shape[0], token_block):
            h = hidden[t0 : t0 + token_block]
            t = targets[t0 : t0 + token_block]
            if lens:
                h = self.final_norm(h)
            width = max(1, chunk_bytes // (4 * h.shape[0]))
            peak = torch.full((h.shape[0],), -torch.inf, dtype=torch.float32, device=h.device)
            total = torch.zeros_like(peak)
            target = torch.zeros_like(peak)
            for v0 in range(0, vocab_size, width):
                logits = self.logits(h, slice(v0, v0 + width))  # a fresh float32 tensor: safe to overwrite
                inside = (t >= v0) & (t < v0 + logits.shape[1])
                target[inside] = logits[inside, t[inside] - v0]
                new_peak = torch.maximum(peak, logits.amax(dim=-1))
                total = total * torch.exp(peak - new_peak) + logits.sub_(new_peak[:, None]).exp_().sum(dim=-1)
                peak = new_peak
            out[t0 : t0 + token_block] = target - (total.log() + peak)
        return out
