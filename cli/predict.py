"""``llkl-db predict SCORE``: benchmark scores from log-likelihood vectors."""

from __future__ import annotations

from typing import Annotated

import typer

from llkl_db.cli import options
from llkl_db.cli.errors import handle_errors
from llkl_db.cli.output import echo, print_json


@handle_errors
def predict(
    score: Annotated[str, typer.Argument(help="Score name in tables/model_scores.parquet, e.g. score_v1_MMLU.")],
    folds: Annotated[int, typer.Option("--folds", help="Cross-validation folds (grouped by model type).")] = 10,
    dataset: options.Dataset = None,
    revision: options.Revision = None,
    where: options.Where = None,
    json: options.Json = False,
) -> None:
    """Ridge regression from the double-centred vectors, CV grouped by model type: the correlation it reaches."""
    from llkl_db.predict import predict_score

    result = predict_score(options.open_dataset(dataset, revision, where), score, n_folds=folds)
    if json:
        print_json(result.to_dict(with_predictions=True))
        return
    echo(
        f"{score}: r = {result.pearson_r:.3f} (Spearman {result.spearman_r:.3f}) over {result.n_models} models, "
        f"{result.n_groups} model types, {result.n_folds} grouped folds"
    )
    echo(f"  RMSE {result.rmse:.4g} (predicting the mean: {result.baseline_rmse:.4g})")


def register(app: typer.Typer) -> None:
    """Add ``predict`` to ``app``."""
    app.command()(predict)
