"""Weight-space distances between checkpoints of a training run (arXiv 2505.15353, section 4)."""

from .distances import sq_distance
from .pairs import checkpoint_pairs, weight_distance_rows

__all__ = ["checkpoint_pairs", "sq_distance", "weight_distance_rows"]
