"""Logit-lens layers of one model: KL between adjacent layers and from each layer to the output."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from llkl_db.errors import LlklError

from .pairs import kl_pairs


@dataclass
class LayerProfile:
    """Layers of one model (output last), with KL to the next listed layer and to the output."""

    model_id: str
    revision: str
    note: str | None
    table: pl.DataFrame  # layer, entry_id, kl_next_bpb, se_next_bpb, kl_output_bpb, se_output_bpb

    def to_dict(self) -> dict:
        return {"model_id": self.model_id, "revision": self.revision, "layers": self.table.to_dicts()}


def layer_profile(ds, model: str) -> LayerProfile:
    """The logit-lens profile of ``model`` (resolved as usual: final revision, reference precision)
    within the view ``ds``. The output is listed as layer ``n_layers``."""
    resolved = ds.resolve(model)
    entries = ds.entries.with_row_index("_row")
    target = ds.entry(model)
    mine = entries.filter(
        (pl.col("model_id") == target["model_id"])
        & (pl.col("revision") == target["revision"])
        & pl.col("variant").is_null()
    )
    layers = mine.filter(pl.col("layer").is_not_null()).sort("layer")
    output = mine.filter(pl.col("layer").is_null())
    name = f"{target['model_id']}@{target['revision']}"
    if layers.height == 0:
        raise LlklError(f"{name} has no logit-lens layer entries in this dataset (entries with a layer)")
    if output.height == 0:
        raise LlklError(f"{name} has layer entries but no output entry to compare them with")
    n_layers = output["n_layers"][0] if output["n_layers"][0] is not None else int(layers["layer"].max()) + 1
    rows = np.concatenate([layers["_row"].to_numpy(), output["_row"].to_numpy()[:1]]).astype(np.int64)
    labels = layers["layer"].to_list() + [int(n_layers)]
    ids = layers["entry_id"].to_list() + [output["entry_id"][0]]
    x = ds.loglik
    mean_bytes = ds.metadata.mean_text_bytes
    k = rows.size
    nxt, nxt_se = kl_pairs(x, rows[:-1], rows[1:], mean_bytes)
    out, out_se = kl_pairs(x, rows[:-1], np.full(k - 1, rows[-1]), mean_bytes)
    table = pl.DataFrame(
        {
            "layer": labels,
            "entry_id": ids,
            "kl_next_bpb": [*nxt.tolist(), None],
            "se_next_bpb": [*nxt_se.tolist(), None],
            "kl_output_bpb": [*out.tolist(), 0.0],
            "se_output_bpb": [*out_se.tolist(), 0.0],
        },
        schema_overrides={"kl_next_bpb": pl.Float64, "se_next_bpb": pl.Float64},
    )
    return LayerProfile(target["model_id"], target["revision"], resolved.note, table)
