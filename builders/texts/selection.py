"""Seeded, deterministic choice of chunks."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TypeVar

from llkl_db.errors import LlklError

T = TypeVar("T")


def pile_sample(population: Sequence[T], seed: int = 42, n_sample: int = 40_000, n_keep: int = 10_000) -> list[T]:
    """The papers' rule: ``random.seed(seed); random.sample(population, n_sample)[:n_keep]``.

    A private ``random.Random(seed)`` draws exactly what the seeded global generator draws, without
    touching the global state."""
    if n_sample > len(population):
        raise LlklError(f"cannot sample {n_sample} chunks from {len(population)}")
    return random.Random(seed).sample(population, n_sample)[:n_keep]


def sample_per_source(chunks: Mapping[str, Sequence[T]], counts: Mapping[str, int], seed: int) -> list[T]:
    """``counts[source]`` chunks drawn from each source (in the order of ``counts``), then the
    whole selection shuffled, all from one generator seeded with ``seed``."""
    rng = random.Random(seed)
    chosen: list[T] = []
    for source, count in counts.items():
        available = chunks.get(source, ())
        if count > len(available):
            raise LlklError(f"source {source!r} has {len(available)} chunks, fewer than the {count} asked for")
        chosen.extend(rng.sample(list(available), count))
    rng.shuffle(chosen)
    return chosen


def split_evenly(n: int, sources: Sequence[str]) -> dict[str, int]:
    """``n`` texts spread over ``sources`` as evenly as possible (the first ones get the remainder)."""
    if not sources:
        raise LlklError("no sources to take texts from")
    base, extra = divmod(n, len(sources))
    return {source: base + (i < extra) for i, source in enumerate(sources)}
