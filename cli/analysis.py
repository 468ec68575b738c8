"""Analysis commands (arXiv 2505.15353): trajectory, layers, scale, map. Thin layers over
:mod:`llkl_db.analysis`; matplotlib is imported only for --plot and PNG maps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llkl_db.cli import options
from llkl_db.cli.errors import handle_errors
from llkl_db.cli.output import format_value, note, plus_minus, print_json, print_table

Plot = Annotated[
    Optional[Path], typer.Option("--plot", help="Also draw a figure to this file (PNG; needs the plot extra).")
]


@handle_errors
def trajectory(
    model: Annotated[str, typer.Argument(help="Model id; models named MODEL-seedN are its seeds.")],
    seed: Annotated[Optional[int], typer.Option("--seed", help="Only the run with this seed.")] = None,
    window: Annotated[int, typer.Option("--window", help="Fit each start over the next WINDOW checkpoints.")] = 10,
    preprocess: Annotated[
        bool,
        typer.Option("--preprocess", help="The papers' preprocessing: --drop-jumps at their fraction, B recomputed."),
    ] = False,
    drop_jumps: Annotated[
        float, typer.Option("--drop-jumps", help="Fraction of texts with the largest jumps after warm-up to drop.")
    ] = 0.0,
    warmup_step: Annotated[
        Optional[int],
        typer.Option("--warmup-step", help="Jumps count from this step (default: 2000/143000 of the run)."),
    ] = None,
    weights: Annotated[
        Optional[bool],
        typer.Option(
            "--weights/--no-weights", help="Require (or ignore) weight distances; default: use them if present."
        ),
    ] = None,
    include_excluded: Annotated[
        bool, typer.Option("--include-excluded", help="Use checkpoints flagged with an excluded_reason too.")
    ] = False,
    dataset: options.Dataset = None,
    revision: options.Revision = None,
    where: options.Where = None,
    json: options.Json = False,
    plot: Plot = None,
) -> None:
    """KL along a training run: to the previous and to the final checkpoint, the diffusion
    exponent c (log-log fit over the next WINDOW checkpoints, from every start) with R^2, the
    weight-space exponent beside it, and the KL between seeds at matching steps."""
    from llkl_db.analysis import trajectory as run_trajectory
    from llkl_db.analysis.jumps import PAPER_FRACTION

    fraction = PAPER_FRACTION if preprocess and drop_jumps == 0 else drop_jumps
    result = run_trajectory(
        options.open_dataset(dataset, revision, where),
        model,
        seed,
        window,
        fraction,
        warmup_step,
        weights,
        include_excluded=include_excluded,
    )
    for line in result.notes:
        note(line)
    if plot:
        from llkl_db.analysis.plots import plot_trajectory

        plot_trajectory(result, plot)
        note(f"wrote {plot}")
    if json:
        print_json(result.to_dict())
        return
    for run in result.runs:
        rows = run.checkpoints.to_dicts()
        for row in rows:
            row["KL to previous"] = plus_minus(row["kl_prev_bpb"], row["se_prev_bpb"])
            row["KL to final"] = plus_minus(row["kl_final_bpb"], row["se_final_bpb"])
            if "w_sq_prev" in row:
                row["|Δθ|² to previous"] = format_value(row["w_sq_prev"])
        columns = ["step", "KL to previous", "KL to final"] + (["|Δθ|² to previous"] if run.has_weights else [])
        print_table(rows, columns, title=f"{run.model_id} (seed {run.seed}): KL in bits/byte")
        fit_cols = ["t0", "n", "c", "r2"] + (["c_w", "r2_w", "ratio"] if run.has_weights else [])
        s = run.summary()
        caption = f"median c = {format_value(s.get('c_median'))}, median R² = {format_value(s.get('r2_median'))}"
        if run.has_weights:
            caption += f"; weight space c_w = {format_value(s.get('c_w_median'))}, c/c_w = {format_value(s.get('ratio_median'))}"
        print_table(
            run.fits.to_dicts(), fit_cols, title=f"exponent from each start (window {result.window})", caption=caption
        )
    if result.seeds is not None:
        print_table(
            result.seeds.to_dicts(), result.seeds.columns, title="KL between seeds at matching steps (bits/byte)"
        )
    if len(result.runs) > 1:
        summary = result.summary()
        print_table(summary.to_dicts(), summary.columns, title=f"{result.model}: exponent per seed")


@handle_errors
def layers(
    model: Annotated[str, typer.Argument(help="Model or entry id (its final revision unless given as MODEL@REV).")],
    dataset: options.Dataset = None,
    revision: options.Revision = None,
    where: options.Where = None,
    json: options.Json = False,
    plot: Plot = None,
) -> None:
    """KL between adjacent logit-lens layers and from each layer to the output."""
    from llkl_db.analysis import layer_profile

    result = layer_profile(options.open_dataset(dataset, revision, where), model)
    if result.note:
        note(result.note)
    if plot:
        from llkl_db.analysis.plots import plot_layers

        plot_layers(result, plot)
        note(f"wrote {plot}")
    if json:
        print_json(result.to_dict())
        return
    rows = result.table.to_dicts()
    for row in rows:
        row["KL to next"] = plus_minus(row["kl_next_bpb"], row["se_next_bpb"])
        row["KL to output"] = plus_minus(row["kl_output_bpb"], row["se_output_bpb"])
    rows[-1]["layer"] = f"{rows[-1]['layer']} (output)"
    print_table(
        rows,
        ["layer", "entry_id", "KL to next", "KL to output"],
        title=f"{result.model_id}@{result.revision}: bits/byte",
    )


@handle_errors
def scale(
    max_pairs: Annotated[int, typer.Option("--max-pairs", help="Random pairs per setting at most.")] = 20_000,
    definitions: Annotated[
        str,
        typer.Option(
            "--definitions",
            help="Which settings: llkl, kl-scale (the kl-scale release's own) or auto (kl-scale for its import).",
        ),
    ] = "auto",
    include_excluded: Annotated[
        bool, typer.Option("--include-excluded", help="Use entries flagged with an excluded_reason too.")
    ] = False,
    dataset: options.Dataset = None,
    revision: options.Revision = None,
    where: options.Where = None,
    json: options.Json = False,
) -> None:
    """Median KL (interquartile range, count) per setting in the dataset, beside the reference
    medians of arXiv 2505.15353."""
    from llkl_db.analysis import scale_table

    result = scale_table(
        options.open_dataset(dataset, revision, where),
        max_pairs=max_pairs,
        definitions=definitions,
        include_excluded=include_excluded,
    )
    if json:
        print_json(result.to_dict())
        return
    rows = result.table.to_dicts()
    for row in rows:
        row["median"] = format_value(row["median_bpb"])
        row["IQR"] = f"{row['q25_bpb']:.3g} – {row['q75_bpb']:.3g}"
        row["paper"] = format_value(row["reference_bpb"])
        row["pairs"] = row["n_pairs"]
    sampled = ", ".join(f"{k} ({v} pairs)" for k, v in result.sampled.items())
    caption = "KL in bits/byte; paper: median of arXiv 2505.15353 (method.md, orders of magnitude)"
    caption += f"; settings by the {result.definitions} definitions"
    if result.n_excluded:
        caption += f"; {result.n_excluded} entries with an excluded_reason left out"
    if sampled:
        caption += f"; sampled: {sampled}"
    print_table(rows, ["setting", "pairs", "median", "IQR", "paper", "example"], title="The KL scale", caption=caption)


@handle_errors
def map(  # noqa: A001
    out: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--out", "-o", help="map.png and/or map.html, the explorer (repeat for both); default map.png if absent."
        ),
    ] = None,
    color: Annotated[
        str, typer.Option("--color", help="model_type, model_id, step, n_params, seed, kind, source, family, ...")
    ] = "model_type",
    method: Annotated[str, typer.Option("--method", help="pca (fast) or tsne (as in the papers).")] = "pca",
    perplexity: Annotated[float, typer.Option("--perplexity", help="t-SNE perplexity.")] = 30.0,
    neighbours: Annotated[
        int, typer.Option("--neighbours", help="Nearest entries listed per entry in the HTML explorer.")
    ] = 10,
    dataset: options.Dataset = None,
    revision: options.Revision = None,
    where: options.Where = None,
    json: options.Json = False,
) -> None:
    """A 2-D map of the entries: a PNG, and/or an HTML explorer (one offline file: zoom, pan,
    search, hover lists every point under the cursor, each entry's nearest entries with KL ± SE,
    colour by family, model type, kind or a benchmark score); checkpoints of a run are joined."""
    from llkl_db.analysis import entry_map
    from llkl_db.analysis.render import write_map
    from llkl_db.errors import BadValueError, LlklError

    if not out:
        default = Path("map.png")
        if default.exists():
            # Never overwrite a file the user did not name.
            raise LlklError(f"{default} exists; name the output with --out (map.png and/or map.html)")
        out = [default]
    bad = [str(p) for p in out if p.suffix.lower() not in (".png", ".html", ".htm")]
    if bad:
        raise BadValueError("out", bad[0], "use a .png or .html file")
    if neighbours < 0:
        raise BadValueError("neighbours", neighbours, "must be 0 or more")
    html = any(p.suffix.lower() in (".html", ".htm") for p in out)
    result = entry_map(
        options.open_dataset(dataset, revision, where),
        method=method,
        color=color,
        perplexity=perplexity,
        neighbours=neighbours if html else 0,
    )
    if method == "tsne":
        note(result.method_note)
    for path in out:
        write_map(result, path)
        note(f"wrote {path} ({len(result.entry_ids)} entries)")
    if json:
        print_json(result.to_dict())


def register(app: typer.Typer) -> None:
    """Add the analysis commands to ``app``."""
    for command in (trajectory, layers, scale, map):
        app.command()(command)
