"""The place command: where a model sits among a dataset's entries, from K of its texts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llkl_db.cli import options
from llkl_db.cli.errors import handle_errors
from llkl_db.cli.output import echo, kl_rows, note, print_json, print_table
from llkl_db.errors import BadValueError, LlklError


@handle_errors
def place(
    model: Annotated[
        Optional[str], typer.Argument(help="Hub id, local folder, .gguf file or offline:NAME (omit with --vector).")
    ] = None,
    vector: Annotated[
        Optional[Path],
        typer.Option(help="A vector file or partial shard (or a --save folder) on the dataset's text set."),
    ] = None,
    texts: Annotated[
        Optional[int],
        typer.Option("--texts", help="How many texts to score (default: enough for ~10% SE on nearest distances)."),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="How many nearest entries to show.")] = 10,
    save: Annotated[
        Optional[Path], typer.Option(help="Folder for the scored vector (partial shard): resumes an interrupted run.")
    ] = None,
    revision: Annotated[str, typer.Option("--model-revision", help="Hub revision of MODEL.")] = "main",
    variant: Annotated[Optional[str], typer.Option(help="Variant of MODEL (bfloat16, q4_0, ...).")] = None,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    model_id: Annotated[
        Optional[str],
        typer.Option(help="Id to record for MODEL (default: a local path's folder name, offline:NAME's Hub id)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the choice of texts.")] = 0,
    selection: Annotated[
        str,
        typer.Option(
            help="uniform: K texts uniformly at random; adaptive: a uniform third, then texts where the nearest "
            "entries disagree (importance-weighted; scores the model in two rounds)."
        ),
    ] = "uniform",
    estimator: Annotated[
        str,
        typer.Option(
            help="assisted: the entries nearest to MODEL predict it on every text (tighter); plain: the K texts alone."
        ),
    ] = "assisted",
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    dataset: options.Dataset = None,
    dataset_revision: options.Revision = None,
    where: options.Where = None,
    json: options.Json = False,
) -> None:
    """Place MODEL among the dataset's entries from K of its texts: nearest entries with KL ± SE,
    and what MODEL is derived from (relation, confidence, provenance p-value)."""
    import numpy as np

    from llkl_db.place.place import ESTIMATORS, SELECTIONS, adaptive_choice, suggest_text_count, texts_to_score
    from llkl_db.place.place import place as place_vector

    if (model is None) == (vector is None):
        raise LlklError("give either MODEL or --vector")
    if selection not in SELECTIONS:
        raise LlklError(f"--selection must be one of {', '.join(SELECTIONS)}, got {selection}")
    if estimator not in ESTIMATORS:  # before any scoring
        raise BadValueError("estimator", estimator, f"expected one of {', '.join(ESTIMATORS)}")
    choice = None
    ds = options.open_dataset(dataset, dataset_revision, where)
    n = ds.metadata.n_texts
    if vector is not None:
        from llkl_db.place.shard import read_vector

        found = read_vector(vector, ds.folder.text_set_key, n)
        ids, values = found.text_ids, found.loglik
        if selection == "adaptive":
            choice, values = adaptive_choice(
                ds, texts if texts is not None else suggest_text_count(ds), _lookup(ids, values, vector), seed
            )
            ids = choice.text_ids
        elif texts is not None:
            ids, values = _subset(ids, values, texts, n, seed)
        name = found.meta.get("entry_id") or str(vector)
        _check_policy(found.meta.get("bos_policy"), ds)
    else:
        chosen = texts if texts is not None else suggest_text_count(ds)
        if texts is None:
            note(f"scoring {chosen} of {n} texts (keeps the SE of nearest distances near 10% on this dataset)")
        from llkl_db.builders.place import ModelSpec, score_for_place

        spec = ModelSpec(model, revision, variant, dtype, model_id)
        policies = set(ds.entries["bos_policy"].drop_nulls().unique().to_list())
        scored = []
        known: dict[int, float] = {}

        def score(wanted):
            # a second round scores only the texts not scored yet (--save also resumes from its shard)
            todo = np.setdiff1d(np.asarray(wanted, dtype=np.int64), np.fromiter(known, np.int64, len(known)))
            if todo.size or not scored:
                got = score_for_place(
                    spec, ds.folder.text_set, todo, policies, save, device, progress=not quiet, on_note=note
                )
                scored.append(got)
                known.update(zip(got.text_ids.tolist(), got.loglik.tolist(), strict=True))
            return np.array([known[int(t)] for t in wanted])

        if selection == "adaptive":
            choice, values = adaptive_choice(ds, chosen, score, seed)
            ids = choice.text_ids
        else:
            ids = texts_to_score(ds, chosen, seed)
            values = score(ids)
        found = scored[-1]
        name = found.meta["entry_id"]
    result = place_vector(ds, ids, values, k=k, name=name, meta=found.meta, choice=choice, estimator=estimator)
    for line in result.notes:
        note(line)
    if save is not None and vector is None:
        note(f"saved the scored vector in {save} (reuse with --vector {save})")
    if json:
        print_json(result.to_dict())
        return
    rows = kl_rows(result.table)
    for row in rows:
        row["relation"] = f"{row['relation']} ({row['confidence']:.0%})"
    print_table(
        rows,
        ["rank", "entry_id", "model_type", "KL bits/byte", "relation"],
        title=f"{result.query} placed from {result.n_used} of {result.n_texts} texts",
        caption=result.calibration,
    )
    echo(result.verdict.text)
    echo("± is 1 SE against the full-text value (sampling of texts; the estimator's bias is not in it)")


def _lookup(ids, values, where):
    """A function returning the values of the given text ids from a (partial) vector."""
    import numpy as np

    position = {int(t): i for i, t in enumerate(ids)}

    def get(wanted):
        missing = [int(t) for t in wanted if int(t) not in position]
        if missing:
            raise LlklError(
                f"{where} has no value for text {missing[0]} ({len(missing)} missing): the adaptive choice needs "
                "the texts it draws (a full vector, or MODEL)"
            )
        return np.asarray(values)[[position[int(t)] for t in wanted]]

    return get


def _subset(ids, values, texts: int, n: int, seed: int):
    """Restrict a vector to ``texts`` of its texts (uniformly, by the seeded choice)."""
    import numpy as np

    from llkl_db.place.place import check_text_count

    check_text_count(texts, min(n, ids.size))
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(ids.size)[:texts])
    return ids[keep], values[keep]


def _check_policy(policy: str | None, ds) -> None:
    policies = set(ds.entries["bos_policy"].drop_nulls().unique().to_list())
    if policy and policies and policy not in policies:
        raise LlklError(
            f"the vector was scored with bos_policy {policy}, the dataset's entries use "
            f"{', '.join(sorted(policies))}: their KL would measure the policy, not the models"
        )


def register(app: typer.Typer) -> None:
    """Add the place command to ``app``."""
    app.command()(place)
