"""The dataset as a living Hub artifact: publish versions, contribute shards, review pull requests."""

from .changelog import Changelog, changelog
from .contribute import ContributeResult, contribute
from .publish import PublishResult, publish
from .review import ReviewResult, review
from .versions import parse_tag, parse_version

__all__ = [
    "Changelog",
    "ContributeResult",
    "PublishResult",
    "ReviewResult",
    "changelog",
    "contribute",
    "parse_tag",
    "parse_version",
    "publish",
    "review",
]
