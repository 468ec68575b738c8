"""``llkl-db import``: bring vectors published elsewhere into schema v1."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llkl_db.cli import options
from llkl_db.cli.errors import handle_errors
from llkl_db.cli.output import echo, note, print_json

app = typer.Typer(
    help="Import published vectors (the 2025 paper's 1,018 models, the kl-scale release) into a dataset.",
    no_args_is_help=True,
)


@app.command("modelmap")
@handle_errors
def modelmap(
    folder: Annotated[
        Path,
        typer.Argument(help="Folder with raw_log-likelihood_1018.pkl and/or model-data-1018.pkl (shimo-lab/modelmap)."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create or extend.")],
    texts: Annotated[
        Optional[Path],
        typer.Option(
            "--texts", help="texts-10k-pile.jsonl or a pile-10k text-set Parquet (default: the jsonl in FOLDER)."
        ),
    ] = None,
    version: Annotated[Optional[str], typer.Option("--version", help="Dataset version X.Y.Z to record.")] = None,
    overwrite: options.Overwrite = False,
    json: options.Json = False,
) -> None:
    """Convert the 1,018 models of arXiv 2502.16173 (pickles, loaded safely) into schema v1 on pile-10k."""
    from llkl_db.importers import import_modelmap

    summary = import_modelmap(folder, out, texts=texts, dataset_version=version, overwrite=overwrite)
    if json:
        print_json(summary.to_dict())
        return
    for line in summary.skipped:
        note(f"skipped {line}")
    for line in summary.notes or []:
        note(line)
    policies = ", ".join(f"{n} {p}" for p, n in sorted((summary.bos_policies or {}).items()))
    echo(
        f"Imported {summary.n_entries} entries and {summary.n_scores} scores into {summary.out} "
        f"(text set {summary.text_set}, dataset {summary.dataset_version}, bos_policy by model type: {policies})"
    )


@app.command("kl-scale")
@handle_errors
def kl_scale(
    folder: Annotated[
        Path, typer.Argument(help="The kl-scale release's data folder (shimo-lab/modelmap, kl-scale/data).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create or extend.")],
    texts: Annotated[
        Optional[Path],
        typer.Option(
            "--texts",
            help="texts-10k-pile.jsonl or a pile-10k text-set Parquet, to recognise texts.json as pile-10k.",
        ),
    ] = None,
    version: Annotated[Optional[str], typer.Option("--version", help="Dataset version X.Y.Z to record.")] = None,
    overwrite: options.Overwrite = False,
    json: options.Json = False,
) -> None:
    """Convert the kl-scale release of arXiv 2505.15353 (models, Pythia checkpoints and seeds, logit-lens
    layers, bnb 8/4-bit variants, weight distances; pickles loaded safely) into schema v1."""
    from llkl_db.importers import import_klscale

    summary = import_klscale(folder, out, texts=texts, dataset_version=version, overwrite=overwrite)
    if json:
        print_json(summary.to_dict())
        return
    for line in summary.notes:
        note(line)
    for line in summary.skipped:
        note(f"skipped {line}")
    if summary.skipped_none:
        none = ", ".join(f"{n} in {f}" for f, n in sorted(summary.skipped_none.items()))
        note(f"skipped entries without a vector (None): {none}")
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(summary.entries.items()))
    echo(
        f"Imported {summary.n_entries} entries ({kinds}), {summary.n_weight_distances} weight distances into "
        f"{summary.out} (text set {summary.text_set}, dataset {summary.dataset_version}; "
        f"{summary.n_excluded} flagged with excluded_reason)"
    )


def register(parent: typer.Typer) -> None:
    """Add the ``import`` command group to ``parent``."""
    parent.add_typer(app, name="import")
