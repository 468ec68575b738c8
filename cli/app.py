"""The Typer application: command groups register here; errors are handled in one place."""

from __future__ import annotations

import typer

from llkl_db.cli import analysis, build, contrib, importers, place, predict, query, texts, training

app = typer.Typer(
    name="llkl-db",
    help="Compare language models as probability distributions: KL divergence from log-likelihood vectors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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
