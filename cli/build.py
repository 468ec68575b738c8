"""Build commands: score models into vector files (one model, or a plan with shards) and merge."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from llkl_db.cli import options
from llkl_db.cli.errors import handle_errors
from llkl_db.cli.output import echo, note
from llkl_db.errors import BadValueError, LlklError
from llkl_db.variants import VARIANTS


def _parse_batch_size(text: str) -> int | None:
    if text == "auto":
        return None
    if not text.isdigit() or int(text) < 1:
        raise BadValueError("batch_size", text, "expected auto or a positive integer")
    return int(text)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


@handle_errors
def build(
    model: Annotated[
        Optional[str], typer.Argument(help="Hub id, local folder or .gguf file (omit with --plan).")
    ] = None,
    revision: Annotated[str, typer.Option(help="Hub revision, e.g. step1000 for Pythia checkpoints.")] = "main",
    texts: Annotated[
        Optional[str],
        typer.Option(help="Shipped text set name (mini) or a text-set Parquet file; default: the plan's, else mini."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder (one Parquet file per entry).")] = Path("llkl-build"),
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")] = "auto",
    variant: Annotated[Optional[str], typer.Option(help=f"{', '.join(VARIANTS)}.")] = None,
    layers: Annotated[str, typer.Option(help="Logit-lens layers: none, all or a list like 0,6,12.")] = "none",
    batch_size: Annotated[str, typer.Option(help="auto or N; auto halves on out-of-memory.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    max_length: Annotated[
        Optional[int], typer.Option(help="Window length cap in tokens (default: model context, at most 2048).")
    ] = None,
    model_id: Annotated[
        Optional[str],
        typer.Option(help="Id to record for MODEL (default: a local path's folder name, offline:NAME's Hub id)."),
    ] = None,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Run the repository's own model code (off by default).")
    ] = False,
    plan: Annotated[
        Optional[str], typer.Option(help="A plan YAML file, or a shipped plan: embedded, pythia, modelmap-1018.")
    ] = None,
    shard: Annotated[Optional[str], typer.Option(help="i/n: run every n-th job of the plan from i.")] = None,
    contributor: Annotated[Optional[str], typer.Option(help="Name recorded as the contributor.")] = None,
    bos_policy: Annotated[
        str,
        typer.Option(
            "--bos-policy",
            help="auto (BOS, else EOS, conditions the first token) or skip-first (the 2025 code: no prefix, "
            "first token not scored), to join an imported 2025 dataset on equal terms.",
        ),
    ] = "auto",
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print what the plan costs (jobs, tokens, FLOPs, GPU-hours, downloads); run nothing."
        ),
    ] = False,
) -> None:
    """Compute log-likelihood vectors: one model, or every job of a plan (resumable)."""
    from llkl_db.builders.build import BuildOptions
    from llkl_db.builders.jobs import Job
    from llkl_db.builders.plan import load_plan, parse_shard, shard_jobs, single_model_plan
    from llkl_db.builders.plan_cost import plan_cost
    from llkl_db.builders.run import run_jobs
    from llkl_db.textsets import load_text_set

    if (model is None) == (plan is None):
        raise LlklError("give either MODEL or --plan")
    if plan is None and shard:
        raise LlklError("--shard applies to --plan")
    if bos_policy not in ("auto", "skip-first"):
        raise BadValueError("bos_policy", bos_policy, "expected auto or skip-first")
    if plan is not None:
        chosen = load_plan(plan)
    else:
        chosen = single_model_plan(
            model,
            revision=revision,
            variant=variant,
            layers=layers,
            dtype=dtype,
            model_id=model_id,
            trust_remote_code=trust_remote_code,
        )
    jobs = shard_jobs(chosen.jobs, parse_shard(shard)) if shard else chosen.jobs
    if plan is not None or dry_run:
        cost = plan_cost(replace(chosen, jobs=jobs))
        for line in cost.lines():
            (echo if dry_run else note)(line)
        if dry_run:
            return
    if device == "auto" and chosen.device:
        device = chosen.device
    text_set = load_text_set(texts or chosen.texts)
    options = BuildOptions(
        device=device,
        batch_size=_parse_batch_size(batch_size),
        max_length=max_length,
        contributor=contributor,
        progress=not quiet,
        bos_policy=bos_policy,
    )

    def on_event(kind: str, job: Job, reason: str) -> None:
        if kind == "start":
            note(f"building {job.key}")
        elif kind == "failed":
            note(f"failed {job.key}: {reason}")

    summary = run_jobs(jobs, text_set, out, options, on_event)
    note(
        f"{_count(len(summary.finished), 'job')} built ({_count(summary.entries_written, 'entry', 'entries')} written), "
        f"{len(summary.skipped)} already done, {len(summary.failed)} failed -> {out}"
    )
    if summary.failed:
        raise typer.Exit(1)


@handle_errors
def merge(
    inputs: Annotated[list[Path], typer.Argument(help="Build output folders (shards) or datasets.")],
    out: Annotated[Path, typer.Option(help="Dataset folder to create or extend.")],
    version: Annotated[Optional[str], typer.Option(help="Dataset version X.Y.Z to record.")] = None,
    recompute_clip: Annotated[
        bool, typer.Option(help="Recompute the clip threshold instead of keeping the recorded one.")
    ] = False,
    overwrite: options.Overwrite = False,
) -> None:
    """Combine build outputs into a dataset folder, refusing duplicates and text-set mismatches."""
    from llkl_db.merge import merge as merge_folders

    metadata = merge_folders(inputs, out, dataset_version=version, recompute_clip=recompute_clip, overwrite=overwrite)
    layers = "" if metadata.layer_clip_threshold is None else f", layers {metadata.layer_clip_threshold:.3f}"
    note(
        f"{out}: dataset {metadata.dataset_version}, text set {metadata.text_set}, "
        f"clip threshold {metadata.clip_threshold:.3f}{layers}"
    )


@handle_errors
def index(
    folder: Annotated[Path, typer.Argument(help="Dataset folder (with llkl-db.json).")],
    dim: Annotated[int, typer.Option("--dim", help="Coordinates per entry (principal directions kept).")] = 64,
    sample: Annotated[int, typer.Option("--sample", help="Entries the basis is fitted on (at most).")] = 20_000,
    reorder: Annotated[
        bool,
        typer.Option(
            "--reorder",
            help="Also rewrite the vector files in the index's kd order (as merge writes them): in blocks, staged, switched in.",
        ),
    ] = False,
) -> None:
    """Build the search index of a dataset (index/): nearest then reads only candidate rows."""
    from llkl_db.errors import BadValueError
    from llkl_db.indexing import build_index
    from llkl_db.io.folder import open_folder

    if dim < 1:
        raise BadValueError("d", dim, "must be at least 1")
    ds_folder = open_folder(folder)
    if not ds_folder.is_dataset():
        from llkl_db.errors import LlklError

        raise LlklError(f"{folder}: not a dataset (no llkl-db.json); merge build outputs first")
    info = build_index(ds_folder, d=dim, sample=sample)
    if reorder:
        from llkl_db.indexing import reorder_by_index

        info = reorder_by_index(ds_folder)
    note(
        f"{ds_folder.index_dir}: {info.n_entries} entries, d={info.d}, "
        f"explained variance {info.explained_variance_fraction:.4f}"
    )


def register(app: typer.Typer) -> None:
    """Add the build commands to ``app``."""
    app.command()(build)
    app.command()(merge)
    app.command()(index)
