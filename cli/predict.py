"""``llkl-db predict SCORE``: benchmark scores from log-likelihood vectors."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from llkl_db.cli import options
from llkl_db.cli.errors import handle_errors
from llkl_db.cli.output import echo, note, print_json


@handle_errors
def predict(
    score: Annotated[str, typer.Argument(help="Score name in tables/model_scores.parquet, e.g. score_v1_MMLU.")],
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model", "-m", help="Also predict the score of this model (e.g. one just placed), with its error."
        ),
    ] = None,
    folds: Annotated[int, typer.Option("--folds", help="Cross-validation folds (grouped by model type).")] = 10,
    dataset: options.Dataset = None,
    revision: options.Revision = None,
    where: options.Where = None,
    json: options.Json = False,
) -> None:
    """Ridge regression from the double-centred vectors, CV grouped by model type: the correlation
    it reaches; with --model, that model's predicted score ± the cross-validated RMSE."""
    from llkl_db.predict import predict_score

    ds = options.open_dataset(dataset, revision, where)
    if model is not None:
        resolved = ds.resolve(model)
        if resolved.note:
            note(resolved.note)
    result = predict_score(ds, score, n_folds=folds, model=model)
    for warning in result.warnings:
        note(f"warning: {warning}")
    if json:
        print_json(result.to_dict(with_predictions=True))
        return
    echo(
        f"{score}: r = {result.pearson_r:.3f} (Spearman {result.spearman_r:.3f}) over {result.n_models} models, "
        f"{result.n_groups} model types, {result.n_folds} grouped folds"
    )
    echo(f"  RMSE {result.rmse:.4g} (predicting the mean: {result.baseline_rmse:.4g})")
    if result.predicted is not None:
        known = "" if result.actual is None else f"; its score in the table, left out of the fit: {result.actual:.4g}"
        echo(
            f"{result.entry_id}: predicted {score} = {result.predicted:.4g} ± {result.rmse:.2g} "
            f"(cross-validated RMSE over {result.n_models} other models{known})"
        )


def register(app: typer.Typer) -> None:
    """Add ``predict`` to ``app``."""
    app.command()(predict)
