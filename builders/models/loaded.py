"""A loaded model with its tokenizer and the provenance that goes into an entry."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class LoadedModel:
    """A causal LM in eval mode, its tokenizer, and where it came from."""

    model: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    model_id: str
    revision: str | None
    model_sha: str | None
    n_params: int
    n_layers: int | None
    dtype: str
    device: str
    tokenizer_name: str
    model_type: str
    base_model: str | None = None
    variant: str | None = None
    source_kind: str = "hub"  # "hub", "folder" or "gguf"
    gguf_file: str | None = None

    def provenance(self) -> dict[str, Any]:
        """Return every field except the model and tokenizer objects, as plain values."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("model", "tokenizer")}
