"""The dataset card (README.md with YAML ``configs:``), generated from the data itself.

The front matter is built with ``huggingface_hub``'s :class:`DatasetCardData` and serialised
by it (YAML quoting of every value, so a hostile folder or text-set name cannot add keys); the
body is ``schema/card_template.md``, its untrusted values escaped by :mod:`llkl_db.escape`.
``datasets.load_dataset(FOLDER)`` loads the default config (the models, else the first kind of
vectors); every table present (texts, model_scores, weight_distances) is a config of its own.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template

import polars as pl

from llkl_db.escape import (
    for_markdown,
    for_markdown_code_block,
    for_markdown_code_span,
    for_markdown_table_cell,
)
from llkl_db.io.folder import DatasetFolder
from llkl_db.io.metadata import DatasetMetadata
from llkl_db.io.vectors import FILE_COLUMN
from llkl_db.schema import spec


def _fields_table(table: str) -> str:
    rows = ["| field | type | description |", "|---|---|---|"]
    for f in spec()["tables"][table]["fields"]:
        rows.append(f"| `{f['name']}` | {f['type']} | {f['description']} |")
    return "\n".join(rows)


def render_card(
    folder: DatasetFolder, metadata: DatasetMetadata, entries: pl.DataFrame, repo_id: str = "ORG/NAME"
) -> str:
    """Markdown of the card: one config per kind of entry (vectors/<kind>/) and one for texts."""
    vectors_dir = folder.vectors_dir

    def relative(path: Path) -> str:
        return Path(path).relative_to(folder.root).as_posix()

    kinds = (
        entries.with_columns(
            pl.col(FILE_COLUMN)
            .map_elements(lambda f: Path(f).relative_to(vectors_dir).parts[0], return_dtype=pl.String)
            .alias("kind")
        )
        .group_by("kind")
        .agg(pl.len().alias("entries"), pl.col("model_id").n_unique().alias("models"))
        .sort("kind")
    )
    configs = []
    default_kind = "models" if "models" in kinds["kind"].to_list() else (kinds["kind"][0] if kinds.height else None)
    for k in kinds["kind"]:
        config = {"config_name": k, "data_files": relative(vectors_dir / k) + "/*.parquet"}
        if k == default_kind:
            config["default"] = True  # load_dataset(FOLDER) without a config name
        configs.append(config)
    texts_file = folder.text_set_path(metadata.text_set)
    configs.append({"config_name": "texts", "data_files": relative(texts_file)})
    scores_file = folder.table_path("model_scores")
    for table in ("model_scores", "weight_distances"):
        path = folder.table_path(table)
        if path.is_file():
            configs.append({"config_name": table, "data_files": relative(path)})
    kinds_table = "\n".join(
        ["| kind | entries | models |", "|---|---|---|"]
        + [
            f"| {for_markdown_table_cell(r['kind'])} | {r['entries']} | {r['models']} |"
            for r in kinds.iter_rows(named=True)
        ]
    )
    licences = _licences(texts_file)
    template = Template(resources.files("llkl_db.schema").joinpath("card_template.md").read_text("utf-8"))
    pretty_name = f"llkl-db {metadata.text_set} v{metadata.dataset_version}"
    body = template.substitute(
        pretty_name=for_markdown(pretty_name),
        dataset_version=metadata.dataset_version,
        schema_version=metadata.schema_version,
        text_set=for_markdown_code_block(metadata.text_set),  # in the fenced examples
        text_set_cell=for_markdown_code_span(metadata.text_set, table=True),
        text_set_sha256_cell=for_markdown_code_span(metadata.text_set_sha256, table=True),
        text_file_code=for_markdown_code_span(relative(texts_file)),
        n_texts=metadata.n_texts,
        mean_text_bytes=f"{metadata.mean_text_bytes:.1f}",
        n_entries=entries.height,
        n_models=entries["model_id"].n_unique(),
        clip_threshold="none" if metadata.clip_threshold is None else f"{metadata.clip_threshold:.3f}",
        layer_clip_threshold="none"
        if metadata.layer_clip_threshold is None
        else f"{metadata.layer_clip_threshold:.3f} nats",
        kinds_table=kinds_table,
        repo_id=repo_id,
        vector_fields=_fields_table("vectors"),
        text_fields=_fields_table("texts"),
        licences=licences,
        vector_sources=_vector_sources(entries),
        tables_section=_tables_section(scores_file),
        changelog_note=_changelog_note(folder),
        first_kind=for_markdown_code_block(kinds["kind"][0] if kinds.height else "models"),
        clip_percentile_ordinal=ordinal(metadata.clip_percentile),
    )
    return card_with_front_matter(pretty_name, configs, body)


LICENSE_NAME = "llkl-db-mixed"  # vectors CC BY 4.0 (or their source's terms), texts per source: see the card


def card_with_front_matter(pretty_name: str, configs: list[dict], body: str) -> str:
    """The card: YAML front matter from :class:`huggingface_hub.DatasetCardData` (which quotes
    every value), then ``body``; parsed back by :class:`huggingface_hub.DatasetCard` as a check."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(
        license="other",
        license_name=LICENSE_NAME,
        pretty_name=pretty_name,
        tags=["language-models", "kl-divergence", "log-likelihood"],
        configs=configs,
    )
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    if card.data.to_dict().get("configs") != configs:  # a value changed the structure: never publish it
        raise ValueError("the dataset card's front matter does not round-trip")
    return str(card)


def ordinal(value: float) -> str:
    """2 -> '2nd', 11 -> '11th', 2.5 -> '2.5th': the clip percentile in words."""
    if float(value) != int(value):
        return f"{value:g}th"
    n = int(value)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _licences(texts_path: Path) -> str:
    if not texts_path.is_file():
        return "- (no text file in this folder)"
    from llkl_db.io.parquet import read_frame
    from llkl_db.io.texts import MAX_TEXT_SET_BYTES

    df = read_frame(texts_path, columns=["source", "license"], max_bytes=MAX_TEXT_SET_BYTES, what="Parquet text set")
    rows = df.group_by("source", maintain_order=True).agg(pl.col("license").drop_nulls().first(), pl.len())
    return "\n".join(
        f"- {for_markdown(r['source'])} ({r['len']} texts): {for_markdown(r['license'] or 'see source')}"
        for r in rows.iter_rows(named=True)
    )


def _vector_sources(entries: pl.DataFrame) -> str:
    """Licence notes per source of vectors: who computed them, with which BOS policy."""
    if "contributor" not in entries.columns:
        return "- all vectors: CC BY 4.0"
    rows = (
        entries.with_columns(pl.col("contributor").fill_null("not recorded"), pl.col("bos_policy").fill_null("?"))
        .group_by("contributor", maintain_order=True)
        .agg(pl.len(), pl.col("bos_policy").unique().sort())
        .sort("contributor")
    )
    lines = []
    for r in rows.iter_rows(named=True):
        note = "CC BY 4.0"
        if "shimo-lab/modelmap" in r["contributor"]:
            note = (
                "published with arXiv:2502.16173 (shimo-lab/modelmap); cite the paper; "
                "first token not scored (bos_policy skip-first)"
            )
        policies = for_markdown(", ".join(r["bos_policy"]))
        lines.append(f"- {for_markdown(r['contributor'])}: {r['len']} entries, bos_policy {policies}; {note}")
    return "\n".join(lines)


def _tables_section(path: Path) -> str:
    if not path.is_file():
        return ""
    from llkl_db.io.parquet import read_frame

    df = read_frame(path, columns=["model_id", "score", "source"])
    scores = df.group_by("score").agg(pl.len(), pl.col("source").drop_nulls().first()).sort("score")
    lines = [
        "## Model scores",
        "",
        f"`tables/model_scores.parquet` (config `model_scores`): {df.height} rows, "
        f"{df['model_id'].n_unique()} models. `llkl-db predict SCORE` predicts one from the vectors "
        "(ridge regression, cross-validation grouped by model type).",
        "",
        "| score | models | source |",
        "|---|---|---|",
    ]
    lines += [
        f"| {for_markdown_table_cell(r['score'])} | {r['len']} | {for_markdown_table_cell(r['source'] or '')} |"
        for r in scores.iter_rows(named=True)
    ]
    lines += ["", _fields_table("model_scores"), ""]
    return "\n".join(lines)


def _changelog_note(folder: DatasetFolder) -> str:
    if folder.changelog_path.is_file():
        return "Entries added and changed in each version: [CHANGELOG.md](CHANGELOG.md), generated from the data."
    return "Each published version lists its added and changed entries in CHANGELOG.md, generated from the data."
