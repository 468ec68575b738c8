"""The Typer application: command groups register here; errors are handled in one place.
``--version`` prints the installed version; ``--install-completion`` / ``--show-completion``
are Typer's shell completion (bash, zsh, fish, PowerShell)."""

from __future__ import annotations

from typing import Annotated

import typer

from llkl_db.cli import analysis, build, contrib, importers, place, predict, query, texts, training

app = typer.Typer(
    name="llkl-db",
    help="Compare language models as probability distributions: KL divergence from log-likelihood vectors.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from llkl_db import __version__

        typer.echo(f"llkl-db {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version of llkl-db and exit."),
    ] = False,
) -> None:
    """Compare language models as probability distributions: KL divergence from log-likelihood vectors."""


query.register(app)
build.register(app)
texts.register(app)
training.register(app)
analysis.register(app)
contrib.register(app)
importers.register(app)
predict.register(app)
place.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
