"""A build job: one model, at one revision, in one variant, scored once for its output and
any logit-lens layers. Jobs are what plans expand to and what shards split."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from llkl_db.io.vectors import entry_id

_STEP = re.compile(r"^step(\d+)$")


@dataclass(frozen=True)
class Job:
    """What to load and how to label the entries it produces."""

    model_id: str
    source: str | None = None  # what to load, when it differs from model_id (folder, .gguf, offline:NAME)
    revision: str = "main"
    variant: str | None = None
    layers: tuple[int, ...] | str = ()  # indices, or "all"
    dtype: str = "auto"
    step: int | None = None
    seed: int | None = None
    base_model: str | None = None
    model_type: str | None = None
    trust_remote_code: bool = False
    gguf_file: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """Unique name of the job: the entry id of its output entry."""
        return entry_id(self.model_id, self.revision, None, self.variant)

    @property
    def training_step(self) -> int | None:
        """The step given, else the one in a Pythia-style revision name ('step1000')."""
        if self.step is not None:
            return self.step
        match = _STEP.match(self.revision)
        return int(match.group(1)) if match else None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["layers"] = list(self.layers) if not isinstance(self.layers, str) else self.layers
        return out
