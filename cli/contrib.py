"""The contribution flow: validate, publish, contribute, review."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llkl_db.cli import options
from llkl_db.cli.errors import handle_errors
from llkl_db.cli.output import echo, note, print_json
from llkl_db.errors import LlklError
from llkl_db.install import install_hint

Repo = Annotated[str, typer.Option("--repo", help="Dataset repository on the Hub, ORG/NAME.")]


def _print_report(report, json: bool) -> None:
    if json:
        print_json(report.to_dict())
        return
    for line in report.notes:
        note(f"note: {line}")
    for problem in report.problems:
        echo(f"FAIL {problem}")
    echo(report.summary())


def _refused(exc, json: bool) -> None:
    """Print every problem of a refused folder, then the one-line error, and exit 1."""
    _print_report(exc.report, json)
    echo(f"Error: {exc}", err=True)
    raise typer.Exit(1)


@handle_errors
def validate(
    path: Annotated[Path, typer.Argument(help="Shard (a build output folder) or dataset folder.")],
    against: Annotated[
        Optional[str],
        typer.Option(
            "--against", help="Target dataset (folder or hf://datasets/ORG/NAME[@REV]): same text set, new entry ids."
        ),
    ] = None,
    revision: options.Revision = None,
    recompute: Annotated[
        int, typer.Option("--recompute", help="Re-score K random texts with each entry's model when it can be loaded.")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the texts picked for --recompute.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda (for --recompute).")] = "auto",
    allow_skip: Annotated[
        bool, typer.Option("--allow-skip", help="Pass even when some entries could not be recomputed here.")
    ] = False,
    json: options.Json = False,
) -> None:
    """Check a shard or dataset: schema, text set, finite and plausible values, unique ids, provenance. Exit 0 only if all pass."""
    if recompute > 0:
        try:
            from llkl_db.builders.recompute import validate_and_recompute
        except ImportError as exc:
            raise LlklError(
                f"--recompute needs the builders ({exc.name} is not installed): {install_hint('build')}"
            ) from None
        report = validate_and_recompute(
            path, recompute, allow_skip=allow_skip, seed=seed, device=device, against=against, revision=revision
        )
    else:
        from llkl_db.validation import validate as run

        report = run(path, against=against, revision=revision)
    _print_report(report, json)
    if not report.ok:
        raise typer.Exit(1)


@handle_errors
def publish(
    folder: Annotated[Path, typer.Argument(help="Dataset folder (made by llkl-db merge or import).")],
    repo: Annotated[Optional[str], typer.Option("--repo", help="Dataset repository on the Hub, ORG/NAME.")] = None,
    to: Annotated[
        Optional[Path], typer.Option("--to", help="Publish into this local folder instead of the Hub.")
    ] = None,
    tag: Annotated[
        Optional[str], typer.Option("--tag", help="Version tag vX.Y.Z (semantic); sets the dataset version.")
    ] = None,
    previous: Annotated[
        Optional[str],
        typer.Option("--previous", help="Previous version to diff against (default: the latest vX.Y.Z tag)."),
    ] = None,
    overwrite: options.Overwrite = False,
    json: options.Json = False,
) -> None:
    """Validate, write the dataset card and changelog, upload (upload_folder) and tag a version."""
    from llkl_db.publish import publish as run
    from llkl_db.validation import ValidationFailed

    try:
        result = run(folder, repo, to=to, tag=tag, previous=previous, overwrite=overwrite)
    except ValidationFailed as exc:
        _refused(exc, json)
    if json:
        print_json(result.to_dict())
        return
    echo(f"Published v{result.version} to {result.destination}" + (f" (tag {result.tag})" if result.tag else ""))
    echo(f"  {result.changelog.summary()}")
    if result.commit_url:
        echo(f"  {result.commit_url}")


@handle_errors
def contribute(
    shard: Annotated[Path, typer.Argument(help="Shard folder: a build output (texts/ and vectors/).")],
    repo: Repo,
    check_target: Annotated[
        bool,
        typer.Option(
            "--check-target/--no-check-target", help="Also validate against the dataset on the Hub (text set, new ids)."
        ),
    ] = True,
    json: options.Json = False,
) -> None:
    """Validate a shard, then open a pull request with its vectors on the dataset repository; prints its URL."""
    from llkl_db.publish import contribute as run
    from llkl_db.validation import ValidationFailed

    try:
        result = run(shard, repo, check_target=check_target)
    except ValidationFailed as exc:
        _refused(exc, json)
    if json:
        print_json(result.to_dict())
        return
    note(f"{len(result.entries)} entries in {len(result.files)} file(s) proposed to {result.repo_id}")
    echo(result.pr_url or "(the Hub returned no pull request URL)")


@handle_errors
def review(
    repo: Annotated[str, typer.Argument(help="Dataset repository on the Hub, ORG/NAME.")],
    merge: Annotated[bool, typer.Option("--merge", help="Merge the pull requests that pass validation.")] = False,
    json: options.Json = False,
) -> None:
    """Validate each open pull request's revision (refs/pr/N); with --merge merge those that pass. Exit 1 if any fails."""
    from llkl_db.publish import review as run

    results = run(repo, merge=merge)
    if json:
        print_json([r.to_dict() for r in results])
    else:
        if not results:
            echo(f"{repo}: no open pull requests")
        for r in results:
            state = "merged" if r.merged else ("passes" if r.ok else "FAILS")
            echo(f"#{r.num} {r.title!r} by {r.author}: {state} ({r.n_entries} entries) {r.url}")
            for problem in r.problems:
                echo(f"  FAIL {problem}")
    if any(not r.ok for r in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add validate, publish, contribute and review to ``app``."""
    for command in (validate, publish, contribute, review):
        app.command()(command)
