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
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from llkl_db.builders.jobs import Job
from llkl_db.errors import BadValueError, LlklError
from llkl_db.io.folder import FAILURES_FILE, DatasetFolder  # noqa: F401 - FAILURES_FILE: the log's name
from llkl_db.variants import get_variant

JOB_FIELDS = {f.name for f in fields(Job)} - {"extra"}


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
    """The one-job plan that scores ``model`` (Hub id, local folder, .gguf file or offline:NAME)
    on ``texts`` (default: mini). A local path is recorded under its folder name (or ``model_id``),
    at revision "local" unless another is given; offline:NAME under its Hub id and the revision
    label of its GGUF (``offline_identity``), as the embedded dataset records it."""
    if variant is not None:
        get_variant(variant)
    local = Path(model).exists()
    offline = model.startswith("offline:")
    default_id, default_revision = (Path(model).name if local else model), "local" if local else "main"
    if offline:
        from llkl_db.builders.models.offline import offline_identity

        default_id, default_revision = offline_identity(model.split(":", 1)[1])
    job = Job(
        model_id=model_id or default_id,
        source=model if local or offline else None,
        revision=default_revision if revision == "main" else revision,
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
    path = DatasetFolder(out).failures_path
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
