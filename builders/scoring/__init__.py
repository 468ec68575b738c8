"""Scoring texts with a causal LM: every token once, the head applied in chunks, logit-lens layers."""

from llkl_db.builders.scoring.score import ScoreResult, score_texts

__all__ = ["ScoreResult", "score_texts"]
