"""Token windows: every token of a text is scored exactly once, never truncated.

A text of tokens t_1..t_n is scored as [prefix, t_1, ..., t_n]: the prefix (BOS, else EOS)
conditions the first token. When that is longer than the model's context, the sequence is cut
into windows of at most ``max_length`` inputs; each later window re-reads the previous
``max_length - stride`` tokens as context and scores only the ``stride`` tokens after them.
Without a prefix (``prefix_id`` None, the 2025 code's 'skip-first'), t_1 is context only and
t_2..t_n are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """One forward-pass input. Position p of ``input_ids`` predicts ``targets[p]``; positions
    before ``score_from`` are context already scored by an earlier window."""

    text_index: int
    input_ids: tuple[int, ...]
    targets: tuple[int, ...]
    score_from: int

    @property
    def n_scored(self) -> int:
        return len(self.targets) - self.score_from


def text_windows(
    text_index: int, token_ids: Sequence[int], prefix_id: int | None, max_length: int, stride: int
) -> list[Window]:
    """Windows that together score each of ``token_ids`` once, conditioned on ``prefix_id``
    (None: no prefix, the first token is not scored)."""
    if max_length < 2:
        raise ValueError("max_length must be at least 2")
    if not 1 <= stride <= max_length - 1:
        raise ValueError("stride must be between 1 and max_length - 1")
    seq = [prefix_id, *token_ids] if prefix_id is not None else list(token_ids)
    n_targets = max(len(seq) - 1, 0)
    windows: list[Window] = []
    scored = 0  # targets seq[1..scored] are done
    while scored < n_targets:
        if scored == 0:
            end = min(len(seq), max_length)
            start = 0
        else:
            end = min(len(seq), scored + 1 + stride)
            start = max(0, end - max_length)
        inputs = seq[start : end - 1]
        targets = seq[start + 1 : end]
        score_from = scored - start
        windows.append(Window(text_index, tuple(inputs), tuple(targets), score_from))
        scored = end - 1
    return windows
