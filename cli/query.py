"""Query commands: nearest, kl, models, info."""

from __future__ import annotations

from typing import Annotated

import typer

from llkl_db.cli import options
from llkl_db.cli.errors import handle_errors
from llkl_db.cli.output import echo, format_value, kl_rows, note, print_json, print_table

WithBias = Annotated[
    bool,
    typer.Option(
        "--with-bias",
        help="Also show a bound on the estimator's bias (clipping, second order), which the SE does not cover.",
    ),
]
SE_FOOTNOTE = "± is 1 SE of sampling noise only; the estimator's bias (clipping, second order: ~4-6% of KL, more when far apart) is not in it"


def _footnote(with_bias: bool) -> str:
    if with_bias:
        return SE_FOOTNOTE + "; 'bias' bounds it: KL ± (2 SE + bias) covers the exact value"
    return SE_FOOTNOTE + " (--with-bias adds it)"


@handle_errors
def nearest(
    model: Annotated[str, typer.Argument(help="Model id or entry id to start from.")],
    k: Annotated[int, typer.Option("-k", help="How many neighbours.")] = 10,
    dataset: options.Dataset = None,
    revision: options.Revision = None,
    where: options.Where = None,
    json: options.Json = False,
    with_bias: WithBias = False,
) -> None:
    """Entries nearest to MODEL by KL divergence, each with its standard error."""
    result = options.open_dataset(dataset, revision, where).nearest(model, k=k, bias_margin=with_bias)
    if result.note:
        note(result.note)
    if json:
        print_json(result.to_dict())
        return
    rows = kl_rows(result.table)
    for row in rows:
        if with_bias:
            row["bias bits/byte"] = f"{row['bias_bpb']:.2g}"
    columns = ["rank", "entry_id", "model_type", "KL bits/byte", "KL nats/text", "level"]
    if with_bias:
        columns.insert(4, "bias bits/byte")
    print_table(
        rows,
        columns,
        title=f"Nearest to {result.query}",
        caption=result.scale,
    )
    echo(_footnote(with_bias))


@handle_errors
def kl(
    a: Annotated[str, typer.Argument(help="First model or entry.")],
    b: Annotated[str, typer.Argument(help="Second model or entry.")],
    dataset: options.Dataset = None,
    revision: options.Revision = None,
    where: options.Where = None,
    json: options.Json = False,
    with_bias: WithBias = False,
) -> None:
    """KL divergence between two entries, in bits/byte and nats/text, with standard errors."""
    ds = options.open_dataset(dataset, revision, where)
    for name in (a, b):
        resolved = ds.resolve(name)
        if resolved.note:
            note(resolved.note)
    result = ds.kl(a, b, bias_margin=with_bias)
    if result.warning:
        note(f"warning: {result.warning}")
    if json:
        print_json(result.to_dict())
        return
    echo(f"KL({result.a}, {result.b})")
    echo(
        f"  {result.kl_bpb:.5g} ± {result.se_bpb:.2g} bits/byte   ({result.level}-level on the scale of arXiv 2505.15353)"
    )
    echo(f"  {result.kl_nats:.5g} ± {result.se_nats:.2g} nats/text   (N = {result.n_texts} texts)")
    if with_bias:
        echo(f"  bias bound {result.bias_bpb:.2g} bits/byte, {result.bias_nats:.2g} nats/text")
    echo(f"  {_footnote(with_bias)}")


@handle_errors
def models(
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="Case-insensitive substring of the model id.")
    ] = None,
    dataset: options.Dataset = None,
    revision: options.Revision = None,
    where: options.Where = None,
    json: options.Json = False,
) -> None:
    """Models in the dataset, with how many entries (revisions, layers, variants) each has."""
    table = options.open_dataset(dataset, revision, where).models(search)
    if json:
        print_json(table.to_dicts())
        return
    print_table(table.to_dicts(), table.columns, caption=f"{table.height} model(s)")


@handle_errors
def info(
    dataset: options.Dataset = None,
    revision: options.Revision = None,
    where: options.Where = None,
    json: options.Json = False,
) -> None:
    """Dataset version, text set, N texts, mean bytes B, K entries, clip threshold, size."""
    facts = options.open_dataset(dataset, revision, where).info()
    if json:
        print_json(facts)
        return
    width = max(map(len, facts))
    for key, value in facts.items():
        echo(f"{key:<{width}}  {format_value(value)}")


def register(app: typer.Typer) -> None:
    """Add the query commands to ``app``."""
    for command in (nearest, kl, models, info):
        app.command()(command)
