"""The ``training:`` section of a plan: what to train before scoring, checked on reading.

training:
  out: build/training                 # relative to the directory the commands run in
  tokenizer: {vocab_size: 2048, sources: [wikipedia, bible, jargon, fortunes]}
  pretrain:
    steps: {final: 1024, every: 128}  # checkpoints 0, 1, 2, 4, ..., 512, 640, ..., 1024
    batch: {size: 4, length: 256}
    lr: {peak: 0.003, warmup: 32, final_fraction: 0.1}
    runs:
      - {name: tiny-llama-0.6m, arch: llama, hidden: 96, layers: 4, heads: 4, ffn: 256, seeds: [0, 1, 2]}
  finetune:
    - {name: SmolLM2-135M-Instruct-bible, base: offline:smollm2-135m-instruct,
       base_model: HuggingFaceTB/SmolLM2-135M-Instruct, domain: bible, steps: 24,
       batch: {size: 4, length: 128}, lr: 0.0001, warmup: 4, seed: 0}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llkl_db.errors import LlklError

from .schedule import pythia_steps

ORG = "llkl-db"  # model ids of models trained here: llkl-db/NAME-seedS
ARCHS = ("llama", "gpt_neox")


@dataclass(frozen=True)
class PretrainRun:
    """One training run from scratch: an architecture, a size and a seed."""

    name: str
    arch: str
    hidden: int
    layers: int
    heads: int
    ffn: int
    seed: int
    context: int = 256

    @property
    def run_name(self) -> str:
        return f"{self.name}-seed{self.seed}"

    @property
    def model_id(self) -> str:
        return f"{ORG}/{self.run_name}"


@dataclass(frozen=True)
class Pretrain:
    """Shared settings of all runs from scratch."""

    runs: tuple[PretrainRun, ...]
    final_step: int
    every: int
    batch_size: int
    length: int
    peak_lr: float
    warmup: int
    final_fraction: float

    @property
    def steps(self) -> list[int]:
        return pythia_steps(self.final_step, self.every)


@dataclass(frozen=True)
class Finetune:
    """A brief fine-tune of a packaged or local model on one domain of the corpora."""

    name: str
    base: str  # offline:NAME or a local folder
    base_model: str  # the parent's model_id in the dataset
    domain: str
    steps: int
    batch_size: int
    length: int
    lr: float
    warmup: int
    seed: int

    @property
    def model_id(self) -> str:
        return f"{ORG}/{self.name}"


@dataclass(frozen=True)
class TrainingSpec:
    """Everything a plan trains, and where it goes."""

    out: Path
    vocab_size: int
    sources: tuple[str, ...]
    pretrain: Pretrain
    finetunes: tuple[Finetune, ...]

    @property
    def tokenizer_dir(self) -> Path:
        return self.out / "tokenizer"

    @property
    def tokens_file(self) -> Path:
        return self.out / "data" / "tokens.npy"

    def run_dir(self, run: PretrainRun) -> Path:
        return self.out / run.run_name

    def checkpoint_dir(self, run: PretrainRun, step: int) -> Path:
        return self.run_dir(run) / f"step{step}"

    def finetune_dir(self, ft: Finetune) -> Path:
        return self.out / ft.name


def _get(raw: dict, key: str, where: str, kind: type | tuple = (int, float, str, list, dict)) -> Any:
    if not isinstance(raw, dict) or key not in raw:
        raise LlklError(f"{where}: missing '{key}'")
    value = raw[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LlklError(f"{where}.{key}: unexpected value {value!r}")
    return value


def _no_extra(raw: dict, allowed: set[str], where: str) -> None:
    extra = set(raw) - allowed
    if extra:
        raise LlklError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")


def parse_training(raw: dict | None, where: str = "plan") -> TrainingSpec:
    """Read and check a plan's ``training:`` section."""
    if not isinstance(raw, dict):
        raise LlklError(f"{where}: no 'training' section; nothing to train")
    where = f"{where}: training"
    _no_extra(raw, {"out", "tokenizer", "pretrain", "finetune"}, where)
    tok = _get(raw, "tokenizer", where, dict)
    pre = _get(raw, "pretrain", where, dict)
    _no_extra(pre, {"steps", "batch", "lr", "runs"}, f"{where}.pretrain")
    steps, batch, lr = (_get(pre, k, f"{where}.pretrain", dict) for k in ("steps", "batch", "lr"))
    runs = []
    for i, spec in enumerate(_get(pre, "runs", f"{where}.pretrain", list)):
        w = f"{where}.pretrain.runs[{i}]"
        _no_extra(spec, {"name", "arch", "hidden", "layers", "heads", "ffn", "seeds", "context"}, w)
        arch = _get(spec, "arch", w, str)
        if arch not in ARCHS:
            raise LlklError(f"{w}.arch: {arch!r}, expected one of {', '.join(ARCHS)}")
        for seed in _get(spec, "seeds", w, list):
            runs.append(
                PretrainRun(
                    name=_get(spec, "name", w, str),
                    arch=arch,
                    hidden=_get(spec, "hidden", w, int),
                    layers=_get(spec, "layers", w, int),
                    heads=_get(spec, "heads", w, int),
                    ffn=_get(spec, "ffn", w, int),
                    seed=int(seed),
                    context=int(spec.get("context", 256)),
                )
            )
    names = [r.run_name for r in runs]
    if len(set(names)) != len(names):
        raise LlklError(f"{where}.pretrain.runs: a run name and seed appear more than once")
    finetunes = []
    for i, spec in enumerate(raw.get("finetune") or []):
        w = f"{where}.finetune[{i}]"
        _no_extra(spec, {"name", "base", "base_model", "domain", "steps", "batch", "lr", "warmup", "seed"}, w)
        fb = _get(spec, "batch", w, dict)
        finetunes.append(
            Finetune(
                name=_get(spec, "name", w, str),
                base=_get(spec, "base", w, str),
                base_model=_get(spec, "base_model", w, str),
                domain=_get(spec, "domain", w, str),
                steps=_get(spec, "steps", w, int),
                batch_size=_get(fb, "size", f"{w}.batch", int),
                length=_get(fb, "length", f"{w}.batch", int),
                lr=float(_get(spec, "lr", w, (int, float))),
                warmup=int(spec.get("warmup", 0)),
                seed=int(spec.get("seed", 0)),
            )
        )
    return TrainingSpec(
        out=Path(raw.get("out", "build/training")),
        vocab_size=_get(tok, "vocab_size", f"{where}.tokenizer", int),
        sources=tuple(_get(tok, "sources", f"{where}.tokenizer", list)),
        pretrain=Pretrain(
            runs=tuple(runs),
            final_step=_get(steps, "final", f"{where}.pretrain.steps", int),
            every=_get(steps, "every", f"{where}.pretrain.steps", int),
            batch_size=_get(batch, "size", f"{where}.pretrain.batch", int),
            length=_get(batch, "length", f"{where}.pretrain.batch", int),
            peak_lr=float(_get(lr, "peak", f"{where}.pretrain.lr", (int, float))),
            warmup=int(lr.get("warmup", 0)),
            final_fraction=float(lr.get("final_fraction", 0.1)),
        ),
        finetunes=tuple(finetunes),
    )


def plan_models(spec: TrainingSpec) -> list[dict]:
    """The ``models:`` entries of a plan that score everything ``spec`` trains: one per
    checkpoint of every run (local folders), and one per fine-tune with its parent as base_model."""
    out = []
    for run in spec.pretrain.runs:
        for step in spec.pretrain.steps:
            out.append(
                {
                    "model_id": run.model_id,
                    "source": str(spec.checkpoint_dir(run, step)),
                    "revision": f"step{step}",
                    "seed": run.seed,
                    "model_type": run.arch,
                }
            )
    for ft in spec.finetunes:
        out.append(
            {
                "model_id": ft.model_id,
                "source": str(spec.finetune_dir(ft)),
                "revision": "local",
                "seed": ft.seed,
                "base_model": ft.base_model,
            }
        )
    return out
