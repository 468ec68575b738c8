"""Model pairs by setting: the vectorised enumeration equals the plain definition, and beyond
ALL_PAIRS_UP_TO models pairs across families are sampled while those within one stay complete."""

from __future__ import annotations

import polars as pl
import pytest

from llkl_db.analysis import settings as st


def _entries(n_families: int = 12) -> pl.DataFrame:
    rows = []
    for f in range(n_families):
        mtype = [None, "llama", "gpt2"][f % 3]
        for size in ("70m", "410m"):
            for seed in range(3 if f % 4 == 0 else 1):
                suffix = f"-seed{seed}" if f % 4 == 0 else ""
                rows.append(
                    {
                        "model_id": f"org{f}/fam{f}-{size}{suffix}",
                        "model_type": mtype,
                        "n_params": None if f % 5 == 0 else float(70e6 if size == "70m" else 410e6),
                        "base_model": None,
                    }
                )
        rows.append(
            {
                "model_id": f"org{f}/tuned{f}",
                "model_type": mtype,
                "n_params": 1.0,
                "base_model": f"org{f}/fam{f}-70m" + ("-seed0" if f % 4 == 0 else ""),
            }
        )
    frame = pl.DataFrame(
        rows, schema={"model_id": pl.String, "model_type": pl.String, "n_params": pl.Float64, "base_model": pl.String}
    )
    return frame.with_columns(
        pl.lit("main").alias("revision"),
        pl.lit(None, pl.Int64).alias("step"),
        pl.lit(None, pl.Int64).alias("layer"),
        pl.lit(None, pl.String).alias("variant"),
    )


def _reference(entries: pl.DataFrame) -> dict[str, set[tuple[int, int]]]:
    """The definition, pair by pair (quadratic): what model_pairs must equal."""
    final = st.final_entries(entries)
    rows, ids = final["_row"].to_list(), final["model_id"].to_list()
    types, params, bases = final["model_type"].to_list(), final["n_params"].to_list(), final["base_model"].to_list()
    by_id = dict(zip(ids, rows, strict=True))
    out = {k: set() for k in (st.SEEDS, st.FINE_TUNE, st.SIZES, st.SAME_TYPE, st.ANY)}
    tuned = set()
    for i, base in enumerate(bases):
        if base and base in by_id and base != ids[i]:
            out[st.FINE_TUNE].add((by_id[base], rows[i]))
            tuned.add(frozenset((base, ids[i])))
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            if st.seed_group(ids[i]) == st.seed_group(ids[j]):
                out[st.SEEDS].add((rows[i], rows[j]))
            elif frozenset((ids[i], ids[j])) in tuned:
                continue
            elif st.family_of(ids[i]) == st.family_of(ids[j]):
                if types[i] == types[j] and params[i] != params[j]:
                    out[st.SIZES].add((rows[i], rows[j]))
            else:
                if types[i] is not None and types[i] == types[j]:
                    out[st.SAME_TYPE].add((rows[i], rows[j]))
                out[st.ANY].add((rows[i], rows[j]))
    return out


def _as_sets(found: dict[str, st.Pairs]) -> dict[str, set[tuple[int, int]]]:
    return {k: set(zip(v.a.tolist(), v.b.tolist(), strict=True)) for k, v in found.items()}


def test_model_pairs_follow_the_definition():
    entries = _entries()
    got, want = _as_sets(st.model_pairs(entries)), _reference(entries)
    assert got == want
    assert all(len(s) for s in want.values())  # every setting is exercised


def test_beyond_the_limit_cross_family_pairs_are_sampled_and_within_family_ones_complete(monkeypatch):
    entries = _entries(30)
    want = _reference(entries)
    monkeypatch.setattr(st, "ALL_PAIRS_UP_TO", 10)
    monkeypatch.setattr(st, "SAMPLED_CROSS_PAIRS", 150)
    got = _as_sets(st.model_pairs(entries))
    for name in (st.SEEDS, st.FINE_TUNE, st.SIZES):
        assert got[name] == want[name], name
    assert len(got[st.ANY]) == 150 and got[st.ANY] <= want[st.ANY]
    assert got[st.SAME_TYPE] == got[st.ANY] & want[st.SAME_TYPE]


@pytest.mark.parametrize("n_families", [1, 2])
def test_tiny_sets_have_no_cross_pairs_to_invent(n_families):
    entries = _entries(n_families)
    assert _as_sets(st.model_pairs(entries)) == _reference(entries)
