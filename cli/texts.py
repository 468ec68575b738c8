"""Text-set commands: ``texts build mini``, ``texts build pile-10k``, ``texts import``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from llkl_db.cli.errors import handle_errors
from llkl_db.cli.options import Json, Overwrite
from llkl_db.cli.output import echo, print_json
from llkl_db.errors import BadValueError

app = typer.Typer(help="Text sets: build them from corpora or import a published one.", no_args_is_help=True)
build_app = typer.Typer(help="Build a text set.", no_args_is_help=True)
app.add_typer(build_app, name="build")

Out = Annotated[
    Path, typer.Option("--out", "-o", help="Parquet file to write (a .json provenance sidecar goes beside it).")
]
OptPath = Optional[Path]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the random selection.")]
DEFAULT_SOURCES = "wikipedia,bible,jargon,fortunes"


def _report(record: dict[str, Any], out: Path, json: bool) -> None:
    if json:
        print_json({"path": str(out), **record})
        return
    per_source = ", ".join(f"{k} {v}" for k, v in record["per_source"].items())
    echo(f"Wrote {out}: {record['name']}, N = {record['n_texts']} texts, mean {record['mean_bytes']:.1f} bytes")
    echo(f"  sha256 {record['sha256']}")
    echo(f"  per source: {per_source}")


def _parse_counts(items: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        source, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise BadValueError("per_source", item, "expected SOURCE=COUNT, e.g. wikipedia=40")
        counts[source.strip()] = int(value)
    return counts


@build_app.command("mini")
@handle_errors
def build_mini(
    out: Out,
    n: Annotated[int, typer.Option("--n", help="Number of texts, split evenly over the sources.")] = 160,
    sources: Annotated[str, typer.Option("--sources", help="Comma-separated sources.")] = DEFAULT_SOURCES,
    per_source: Annotated[
        Optional[list[str]], typer.Option("--per-source", help="SOURCE=COUNT, repeatable; overrides --n, --sources.")
    ] = None,
    min_bytes: Annotated[int, typer.Option("--min-bytes", help="Keep chunks longer than this many bytes.")] = 200,
    max_bytes: Annotated[int, typer.Option("--max-bytes", help="Chunks of at most this many UTF-8 bytes.")] = 600,
    seed: Seed = 42,
    wheel_dir: Annotated[OptPath, typer.Option("--gensim-wheel", help="gensim 4.4.0 wheel or its folder.")] = None,
    bible_dir: Annotated[OptPath, typer.Option("--bible-dir", help="SWORD module folder of engWEB2015eb.")] = None,
    jargon_file: Annotated[OptPath, typer.Option("--jargon-file", help="jargon.txt.gz of jargon-text.")] = None,
    fortunes_dir: Annotated[OptPath, typer.Option("--fortunes-dir", help="Folder of fortune files.")] = None,
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """The offline mini text set from packaged corpora (Wikipedia, World English Bible, Jargon File, fortunes)."""
    from dataclasses import replace

    from llkl_db.builders.texts.corpora.locations import CorpusPaths
    from llkl_db.builders.texts.mini import MiniParams
    from llkl_db.builders.texts.mini import build_mini as build

    overrides = dict(wheel_dir=wheel_dir, bible_dir=bible_dir, jargon_file=jargon_file, fortunes_dir=fortunes_dir)
    paths = replace(CorpusPaths(), **{k: v for k, v in overrides.items() if v is not None})
    params = MiniParams(
        n=n,
        sources=tuple(s.strip() for s in sources.split(",") if s.strip()),
        per_source=_parse_counts(per_source) if per_source else None,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        seed=seed,
        paths=paths,
    )
    _report(build(out, params, overwrite=overwrite), out, json)


@build_app.command("pile-10k")
@handle_errors
def build_pile(
    out: Out,
    revision: Annotated[Optional[str], typer.Option("--revision", help="Dataset revision on the Hub.")] = None,
    n_docs: Annotated[int, typer.Option("--n-docs", help="Documents read from the start of train.")] = 1_000_000,
    n_sample: Annotated[int, typer.Option("--n-sample", help="Chunks drawn by random.sample.")] = 40_000,
    n_keep: Annotated[int, typer.Option("--n-keep", help="Chunks kept: the first of those drawn.")] = 10_000,
    seed: Seed = 42,
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """The papers' reference set from monology/pile-uncopyrighted on the Hub (downloads the whole first train shard)."""
    from llkl_db.builders.texts.hub import HubPile
    from llkl_db.builders.texts.pile import PileParams
    from llkl_db.builders.texts.pile import build_pile as build

    source = HubPile(revision=revision)
    params = PileParams(n_docs=n_docs, n_sample=n_sample, n_keep=n_keep, seed=seed)
    _report(build(out, source, params, provenance_of=source.provenance, overwrite=overwrite), out, json)


@app.command("import")
@handle_errors
def import_(
    file: Annotated[Path, typer.Argument(help="texts-10k-pile.jsonl of shimo-lab/modelmap (1000models/data/text).")],
    out: Out,
    name: Annotated[str, typer.Option("--name", help="Name of the text set.")] = "pile-10k",
    overwrite: Overwrite = False,
    json: Json = False,
) -> None:
    """Import the 2025 paper's published text set, so that vectors line up with its 1,018 models."""
    from llkl_db.textsets.modelmap import import_modelmap

    _report(import_modelmap(file, out, name, overwrite=overwrite), out, json)


def register(parent: typer.Typer) -> None:
    """Add the ``texts`` command group to ``parent``."""
    parent.add_typer(app, name="texts")
