"""Plans: YAML files that expand to jobs (models x revisions x variants), run resumably and
split into shards for job arrays.

    texts: mini
    defaults: {dtype: float32}
    models:
      - model_id: EleutherAI/pythia-410m
        revisions: [step0, step1, step2, main]
        variants: [null, bfloat16]
        layers: all            # logit-lens layers, computed for the reference variant (null) only
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from llkl_db.builders.jobs import Job
from llkl_db.errors import BadValueError, LlklError
from llkl_db.variants import get_variant

JOB_FIELDS = {f.name for f in fields(Job)} - {"extra"}
FAILURES_FILE = "failures.jsonl"


@dataclass(frozen=True)
class Plan:
    """A text set and the jobs to run on it."""

    texts: str
    jobs: list[Job]
    path: Path | None = None
    device: str | None = None  # a plan may pin the device (the embedded one runs on CPU)


def parse_plan(raw: dict, path: Path | None = None) -> Plan:
    """Expand a plan dictionary into jobs, rejecting unknown keys with the entry named."""
    where = str(path) if path else "plan"
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list) or not raw.get("texts"):
        raise LlklError(f"{where}: a plan needs 'texts' and a list of 'models'")
    defaults = raw.get("defaults") or {}
    jobs: list[Job] = []
    unknown_defaults = set(defaults) - JOB_FIELDS - {"device"}
    if unknown_defaults:
        raise LlklError(f"{where}: defaults: unknown key(s) {', '.join(sorted(unknown_defaults))}")
    for i, spec in enumerate(raw["models"]):
        if not isinstance(spec, dict) or "model_id" not in spec:
            raise LlklError(f"{where}: models[{i}] needs a model_id")
        spec = {**{k: v for k, v in defaults.items() if k != "device"}, **spec}
        revisions = spec.pop("revisions", None) or [spec.pop("revision", "main")]
        spec.pop("revision", None)
        variants = spec.pop("variants", None) or [spec.pop("variant", None)]
        spec.pop("variant", None)
        unknown = set(spec) - JOB_FIELDS
        if unknown:
            raise LlklError(f"{where}: models[{i}] ({spec['model_id']}): unknown key(s) {', '.join(sorted(unknown))}")
        layers = parse_layers(spec.pop("layers", ()))
        for variant in variants:
            if variant is not None:
                get_variant(variant)
        for revision in revisions:
            for variant in variants:
                jobs.append(
                    Job(**spec, revision=str(revision), variant=variant, layers=layers if variant is None else ())
                )
    keys = [job.key for job in jobs]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise LlklError(f"{where}: job {duplicates[0]} appears more than once")
    return Plan(texts=str(raw["texts"]), jobs=jobs, path=path, device=defaults.get("device"))


def read_plan(plan: Path | str) -> tuple[dict, Path]:
    """Read a plan file (YAML), or a shipped plan by name (embedded, pythia, modelmap-1018), into its
    raw dictionary and the path it came from: the one reader of plan files (jobs, training, plan_yaml)."""
    import yaml

    from llkl_db.builders.plans import shipped_plans

    path = Path(plan)
    shipped = shipped_plans()
    if not path.exists() and str(plan) in shipped:
        path = Path(shipped[str(plan)])
    try:
        return yaml.safe_load(path.read_text("utf-8")), path
    except (OSError, yaml.YAMLError) as exc:
        raise LlklError(f"{path}: cannot read plan ({str(exc).splitlines()[0]})") from None


def load_plan(plan: Path | str) -> Plan:
    """Read a plan file (YAML), or a shipped plan by name, and expand it into jobs."""
    raw, path = read_plan(plan)
    return parse_plan(raw, path)


def parse_layers(layers: str | int | list | tuple | None) -> tuple[int, ...] | str:
    """Logit-lens layers, from a plan value or a command-line string: None or "none" -> (),
    "all", a list of indices, or a comma-separated string like "0,6,12"."""
    if layers is None or layers == "none":
        return ()
    if layers == "all":
        return "all"
    items = layers.split(",") if isinstance(layers, str) else [layers] if isinstance(layers, int) else layers
    try:
        return tuple(int(x) for x in items)
    except (TypeError, ValueError):
        raise BadValueError("layers", layers, "expected none, all or a list like 0,6,12") from None


def single_model_plan(
    model: str,
    revision: str = "main",
    variant: str | None = None,
    layers: str | list | tuple | None = None,
    dtype: str = "auto",
    model_id: str | None = None,
    trust_remote_code: bool = False,
    texts: str | None = None,
) -> Plan:
    """The one-job plan that scores ``model`` (Hub id, local folder or .gguf file) on ``texts``
    (default: mini). A local path is recorded under its folder name (or ``model_id``), at revision
    "local" unless another is given."""
    if variant is not None:
        get_variant(variant)
    local = Path(model).exists()
    job = Job(
        model_id=model_id or (Path(model).name if local else model),
        source=model if local else None,
        revision="local" if local and revision == "main" else revision,
        variant=variant,
        layers=parse_layers(layers),
        dtype=dtype,
        trust_remote_code=trust_remote_code,
    )
    return Plan(texts=texts or "mini", jobs=[job])


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' with 0 <= i < n."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise BadValueError("shard", text, "expected i/n, e.g. 0/8") from None
    if not (n >= 1 and 0 <= i < n):
        raise BadValueError("shard", text, "need 0 <= i < n")
    return i, n


def shard_jobs(jobs: list[Job], shard: tuple[int, int]) -> list[Job]:
    """Shard i of n: every n-th job from i, in plan order (deterministic, balanced)."""
    i, n = shard
    return jobs[i::n]


def record_failure(out: Path, job: Job, reason: str) -> None:
    """Append one line to the run's failure log (each line is complete JSON).

    When the line cannot be written (disk full), the log is put back as it was (a log created
    here is removed, never left empty or with half a line) and the OSError propagates."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / FAILURES_FILE
    line = json.dumps({"job": job.key, "reason": reason, "at": datetime.now(UTC).isoformat()})
    existed = path.exists()
    size = path.stat().st_size if existed else 0
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        try:
            if existed:
                os.truncate(path, size)
            else:
                path.unlink(missing_ok=True)
        except OSError:
            pass
        raise


# --- what a plan costs, printed before it starts ---------------------------------------------
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
