"""Run everything a plan's ``training:`` section asks for, resumably: the data, the runs from
scratch (several in parallel, one thread each), then the fine-tunes."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

from .data import domain_texts, prepare_data
from .finetune import finetune, finetune_done
from .pretrain import pretrain, run_done
from .spec import TrainingSpec


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class TrainSummary:
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _pretrain_one(spec: TrainingSpec, run, threads: int) -> dict:
    return pretrain(spec, run, spec.tokens_file, threads=threads, log=_log)


def train_all(spec: TrainingSpec, jobs: int = 2, only: set[str] | None = None, log=_log) -> TrainSummary:
    """Train every run and fine-tune of ``spec`` that is not done yet (``only``: by run name)."""
    started = time.perf_counter()
    summary = TrainSummary()
    runs = [r for r in spec.pretrain.runs if not only or r.run_name in only or r.name in only]
    fts = [f for f in spec.finetunes if not only or f.name in only]
    todo = [r for r in runs if not run_done(spec, r)]
    summary.skipped += [r.run_name for r in runs if r not in todo]
    if todo:
        prepare_data(spec, log=log)
        if jobs <= 1:
            for run in todo:
                _pretrain_one(spec, run, 1)
                summary.trained.append(run.run_name)
        else:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
                futures = {run.run_name: pool.submit(_pretrain_one, spec, run, 1) for run in todo}
                for name, future in futures.items():
                    record = future.result()
                    log(f"{name}: done, {record['n_params']:,} parameters, {record['seconds']} s")
                    summary.trained.append(name)
    for ft in fts:
        if finetune_done(spec, ft):
            summary.skipped.append(ft.name)
            continue
        finetune(spec, ft, domain_texts(spec, ft.domain), threads=max(1, jobs), log=log)
        summary.trained.append(ft.name)
    summary.seconds = time.perf_counter() - started
    return summary
