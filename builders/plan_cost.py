"""What a plan costs, printed before it starts: jobs, tokens, FLOPs, GPU-hours at a stated
utilisation, and the checkpoints to download (which, not compute, set the wall time)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from llkl_db.builders.plan import Plan
from llkl_db.errors import LlklError

BYTES_PER_TOKEN = 4.0  # a rough figure for English web text under ~50k-vocabulary BPE tokenizers
PILE_10K_TEXTS = 10_000
PILE_10K_MEAN_BYTES = 972.0  # method.md section 1
H100_BF16_DENSE_FLOPS = 989e12
UTILISATION = 0.40
CHECKPOINT_BYTES_PER_PARAM = 2  # float16 / bfloat16 checkpoints
_SIZE = re.compile(r"(?<![\d.])(?:(\d+)x)?(\d+(?:\.\d+)?)([mb])(?=$|[-_.])", re.IGNORECASE)


def params_from_name(model_id: str) -> int | None:
    """Parameters from a size in the model id ('pythia-410m', 'Llama-2-7b-hf', 'Mixtral-8x7B'), else None."""
    match = _SIZE.search(model_id.rsplit("/", 1)[-1])
    if match is None:
        return None
    experts = int(match.group(1)) if match.group(1) else 1
    return int(round(experts * float(match.group(2)) * (1e6 if match.group(3).lower() == "m" else 1e9)))


@dataclass(frozen=True)
class PlanCost:
    """An estimate of a plan's work: forward passes over the text set and checkpoint downloads."""

    name: str
    n_jobs: int
    n_checkpoints: int  # distinct (model, revision) to download
    n_texts: int
    mean_tokens: float
    tokens_note: str
    flops: float
    gpu_hours: float
    download_bytes: float
    unknown_size: list[str]
    assumed_params: float = 0.0  # the parameters assumed for a model of unknown size

    @property
    def tokens_per_job(self) -> float:
        return self.n_texts * self.mean_tokens

    def lines(self) -> list[str]:
        unknown = ""
        if self.unknown_size:
            shown = ", ".join(self.unknown_size[:2]) + (", ..." if len(self.unknown_size) > 2 else "")
            unknown = (
                f"; {len(self.unknown_size)} models without a size in their id ({shown}) "
                f"counted at the median size, {self.assumed_params / 1e9:.1f}B"
            )
        return [
            f"plan {self.name}: {self.n_jobs:,} jobs, {self.n_checkpoints:,} checkpoints to download",
            f"tokens: {self.n_texts:,} texts x {self.mean_tokens:,.0f} tokens = {self.tokens_per_job / 1e6:,.2f}M "
            f"per job ({self.tokens_note})",
            f"compute: {self.flops:.3g} FLOPs (2 x params x tokens per forward){unknown}",
            f"GPU time: {self.gpu_hours:,.0f} GPU-hours at {UTILISATION:.0%} of an H100's "
            f"{H100_BF16_DENSE_FLOPS / 1e12:,.0f} TFLOP/s (bf16 dense)",
            f"downloads: {self.download_bytes / 1e12:,.1f} TB (params x {CHECKPOINT_BYTES_PER_PARAM} bytes per "
            "checkpoint): downloads, not compute, set the wall time",
        ]


def plan_cost(plan: Plan) -> PlanCost:
    """What ``plan`` costs: jobs, tokens (from the text set, or pile-10k's documented size at
    ~4 bytes per token), forward FLOPs, GPU-hours at :data:`UTILISATION` of an H100, and the
    download volume of its distinct checkpoints (parameters from the sizes in the model ids)."""
    from llkl_db.textsets import load_text_set

    try:
        texts = load_text_set(plan.texts)
        n_texts, mean_bytes, source = len(texts), texts.mean_bytes, f"text set {texts.name}"
    except LlklError:
        n_texts, mean_bytes = PILE_10K_TEXTS, PILE_10K_MEAN_BYTES
        source = f"{plan.texts} not installed: pile-10k's {PILE_10K_TEXTS:,} texts of {PILE_10K_MEAN_BYTES:.0f} bytes"
    mean_tokens = mean_bytes / BYTES_PER_TOKEN
    note = f"{source}; tokens estimated from bytes at ~{BYTES_PER_TOKEN:.0f} bytes/token"
    sizes = {job.model_id: params_from_name(job.model_id) for job in plan.jobs}
    known = sorted(p for p in sizes.values() if p is not None)
    assumed = float(known[len(known) // 2]) if known else 0.0
    unknown = [m for m, p in sizes.items() if p is None]
    flops = 0.0
    checkpoints: dict[tuple[str, str], float] = {}
    for job in plan.jobs:
        params = sizes[job.model_id] or assumed
        flops += 2.0 * params * n_texts * mean_tokens
        checkpoints[(job.model_id, job.revision)] = params
    name = plan.path.stem if plan.path else "plan"
    return PlanCost(
        name=name,
        n_jobs=len(plan.jobs),
        n_checkpoints=len({(j.model_id, j.revision) for j in plan.jobs}),
        n_texts=n_texts,
        mean_tokens=mean_tokens,
        tokens_note=note,
        flops=flops,
        gpu_hours=flops / (UTILISATION * H100_BF16_DENSE_FLOPS) / 3600,
        download_bytes=float(sum(checkpoints.values())) * CHECKPOINT_BYTES_PER_PARAM,
        unknown_size=unknown,
        assumed_params=assumed,
    )
