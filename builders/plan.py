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
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from llkl_db.builders.jobs import Job
from llkl_db.errors import LlklError

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
        layers = spec.pop("layers", ())
        if layers in (None, "none"):
            layers = ()
        elif layers != "all":
            layers = tuple(int(x) for x in layers)
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


def load_plan(path: Path | str) -> Plan:
    """Read a plan file (YAML), or a shipped plan by name (embedded, pythia, modelmap-1018)."""
    import yaml

    from llkl_db.builders.plans import shipped_plans

    shipped = shipped_plans()
    if not Path(path).exists() and str(path) in shipped:
        path = shipped[str(path)]

    try:
        raw = yaml.safe_load(Path(path).read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LlklError(f"{path}: cannot read plan ({str(exc).splitlines()[0]})") from None
    return parse_plan(raw, Path(path))


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' with 0 <= i < n."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise LlklError(f"--shard {text!r}: expected i/n, e.g. 0/8") from None
    if not (n >= 1 and 0 <= i < n):
        raise LlklError(f"--shard {text!r}: need 0 <= i < n")
    return i, n


def shard_jobs(jobs: list[Job], shard: tuple[int, int]) -> list[Job]:
    """Shard i of n: every n-th job from i, in plan order (deterministic, balanced)."""
    i, n = shard
    return jobs[i::n]


def record_failure(out: Path, job: Job, reason: str) -> None:
    """Append one line to the run's failure log (each line is complete JSON)."""
    out.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"job": job.key, "reason": reason, "at": datetime.now(UTC).isoformat()})
    with open(out / FAILURES_FILE, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
