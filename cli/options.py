"""Option types shared by every command, so that each is spelled and documented once."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

Dataset = Annotated[
    Optional[str],
    typer.Option(
        "--dataset",
        "-d",
        help="Local folder, hf://datasets/ORG/NAME[@REV] or ORG/NAME; default: the embedded dataset.",
        envvar="LLKL_DB_DATASET",
    ),
]
Revision = Annotated[
    Optional[str], typer.Option("--revision", help="Dataset revision (tag, branch or commit) on the Hub.")
]
Where = Annotated[
    Optional[str],
    typer.Option(
        "--where", "-w", help="SQL condition on entry metadata, e.g. \"model_type = 'llama' AND layer IS NULL\"."
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite", help="Replace a target that is not a llkl-db dataset or text set (its files are deleted)."
    ),
]


def open_dataset(dataset: str | None, revision: str | None = None, where: str | None = None):
    """The dataset the shared options name, filtered by ``--where`` (llkl_db loads lazily)."""
    import llkl_db

    return llkl_db.open(dataset, revision=revision).filter(where)
