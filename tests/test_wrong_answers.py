"""Answers that looked right and were wrong: name resolution, validation bounds per kind of
entry, the bias the SE does not cover, and imports that silently collapsed entries."""

from __future__ import annotations

from helpers import synthetic_loglik, write_dataset

import llkl_db
from llkl_db.io.vectors import entry_id

# --- 1. resolution ------------------------------------------------------------------------


def _rows(model: str, revision: str, layers, variant=None, output=True) -> list[dict]:
    rows = [
        {
            "entry_id": entry_id(model, revision, layer, variant),
            "model_id": model,
            "revision": revision,
            "layer": layer,
            "n_layers": 30,
            "variant": variant,
        }
        for layer in layers
    ]
    if output:
        rows.append(
            {
                "entry_id": entry_id(model, revision, None, variant),
                "model_id": model,
                "revision": revision,
                "variant": variant,
                "n_layers": 30,
            }
        )
    return rows


def test_local_bfloat16_build_with_all_layers_resolves_to_its_output(tmp_path):
    """`--variant bfloat16 --layers all`: entries :L0:bfloat16 .. :L29:bfloat16 and the output."""
    rows = _rows("my-model", "local", range(30), "bfloat16")
    root = write_dataset(tmp_path / "ds", synthetic_loglik(len(rows), 64), rows)
    resolved = llkl_db.open(root).resolve("my-model")
    assert resolved.entry_id == "my-model@local:bfloat16"
    assert "output layer" in resolved.note and "bfloat16" in resolved.note


def test_model_without_output_entry_resolves_to_its_deepest_layer_and_says_so(tmp_path):
    rows = _rows("org/lens-only", "main", range(12), output=False)
    rows += [{"entry_id": "org/other@main", "model_id": "org/other", "revision": "main"}]
    root = write_dataset(tmp_path / "ds", synthetic_loglik(len(rows), 64), rows)
    resolved = llkl_db.open(root).resolve("org/lens-only")
    assert resolved.entry_id == "org/lens-only@main:L11"
    assert "output layer" not in resolved.note
    assert "no output entry" in resolved.note and "layer 11" in resolved.note


def test_model_id_with_at_sign(tmp_path):
    rows = [
        {"entry_id": "org/model@v2@main", "model_id": "org/model@v2", "revision": "main"},
        {"entry_id": "org/model@v2@step10", "model_id": "org/model@v2", "revision": "step10", "step": 10},
        {"entry_id": "org/model@main", "model_id": "org/model", "revision": "main"},
    ]
    root = write_dataset(tmp_path / "ds", synthetic_loglik(len(rows), 64), rows)
    ds = llkl_db.open(root)
    assert ds.resolve("org/model@v2").entry_id == "org/model@v2@main"
    assert ds.resolve("org/model@v2@step10").entry_id == "org/model@v2@step10"
    assert ds.resolve("org/model").entry_id == "org/model@main"
    assert ds.kl("org/model@v2", "org/model").b == "org/model@main"


# --- 2. validation bounds per kind of entry -----------------------------------------------


def test_embedded_dataset_validates_with_zero_problems():
    from pathlib import Path

    from llkl_db.validation.validate import validate

    root = Path(llkl_db.__file__).parent / "data" / "embedded"
    report = validate(root)
    assert report.problems == []
    assert report.ok and len(report.entries) == len(llkl_db.open(root))


def test_layer_bounds_are_wider_but_output_bounds_unchanged(tmp_path):
    """A lens layer far worse than uniform is plausible; the same vector as an output is not;
    a positive log-likelihood is wrong for both."""
    from llkl_db.validation.validate import validate

    n = 64
    bad = synthetic_loglik(3, n) * 40.0  # about -12,000 nats for 20..200 bytes: hundreds of bits/byte
    bad[2, 5] = 1.0  # positive log-likelihood in the last row
    rows = [
        {
            "entry_id": "org/m@main:L0",
            "model_id": "org/m",
            "revision": "main",
            "layer": 0,
            "n_layers": 2,
            "contributor": "test",
        },
        {"entry_id": "org/m@main", "model_id": "org/m", "revision": "main", "n_layers": 2, "contributor": "test"},
        {
            "entry_id": "org/m@main:L1",
            "model_id": "org/m",
            "revision": "main",
            "layer": 1,
            "n_layers": 2,
            "contributor": "test",
        },
    ]
    root = write_dataset(tmp_path / "ds", bad, rows)
    report = validate(root)
    by_entry = {}
    for p in report.problems:
        by_entry.setdefault(p.entry, []).append(p.reason)
    assert "org/m@main:L0" not in by_entry, by_entry
    assert any("model output" in r for r in by_entry["org/m@main"])
    assert any("positive log-likelihood" in r for r in by_entry["org/m@main:L1"])
