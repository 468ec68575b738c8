"""The dataset card (README.md with YAML ``configs:``), generated from the data itself."""

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
    for_yaml_scalar,
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
    # Front matter values are YAML scalars: a folder name cannot add keys (e.g. configs) there.
    configs = [
        f"- config_name: {for_yaml_scalar(k)}\n  data_files: {for_yaml_scalar(relative(vectors_dir / k) + '/*.parquet')}"
        for k in kinds["kind"]
    ]
    texts_file = folder.text_set_path(metadata.text_set)
    configs.append(f"- config_name: texts\n  data_files: {for_yaml_scalar(relative(texts_file))}")
    scores_file = folder.table_path("model_scores")
    if scores_file.is_file():
        configs.append(f"- config_name: model_scores\n  data_files: {relative(scores_file)}")
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
    return template.substitute(
        pretty_name_yaml=for_yaml_scalar(pretty_name),
        pretty_name=for_markdown(pretty_name),
        configs="\n".join(configs),
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
        clip_percentile=f"{metadata.clip_percentile:g}",
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
    )


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
