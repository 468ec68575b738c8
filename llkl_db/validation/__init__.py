"""Validation of a shard (a build output) or a dataset folder before it joins a dataset."""

from .report import Problem, ValidationFailed, ValidationReport
from .validate import BOUNDS, validate

__all__ = ["BOUNDS", "Problem", "ValidationFailed", "ValidationReport", "validate"]
