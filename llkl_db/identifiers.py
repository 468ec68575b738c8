"""What an id or a name may contain: the rule ``llkl-db validate`` applies to contributed entries.

- ids (entry_id, model_id, revision, variant, base_model): 1..256 characters from
  ``A-Z a-z 0-9 . _ - / @ : + = ~`` (every Hugging Face Hub repo id, branch, tag and commit fits;
  no space, quote, bracket, backtick, pipe, backslash, ``<``/``>``, ``&``, ``#``, ``*`` or control
  character), with no ``.`` or ``..`` path segment. A leading ``/`` is allowed: a local build
  may record a model's absolute folder as its model id, which ``validate --recompute`` loads;
- contributor names: 1..128 printable unicode characters (``str.isprintable``: no control, format
  or separator characters such as ESC, newline, bidi overrides or zero-width spaces), no leading
  or trailing space;
- score names: 1..128 characters from ``A-Z a-z 0-9 . _ -``.

The rule keeps stored values boring; output still escapes every value for its context
(:mod:`llkl_db.escape`), because a query may read a folder that was never validated.
"""

from __future__ import annotations

import re

from llkl_db.escape import visible_controls

ID_KINDS = ("entry_id", "model_id", "revision", "variant", "base_model")
ID_CHARS = "A-Z a-z 0-9 . _ - / @ : + = ~"
ID_MAX = 256
NAME_KINDS = ("contributor",)
NAME_MAX = 128
SCORE_KINDS = ("score",)
SCORE_CHARS = "A-Z a-z 0-9 . _ -"
SCORE_MAX = 128

_ID_BAD = re.compile(r"[^A-Za-z0-9._\-/@:+=~]")
_SCORE_BAD = re.compile(r"[^A-Za-z0-9._\-]")


def describe_char(ch: str) -> str:
    """A character as people can read it whatever it is: ``'\\x1b' (U+001B)``, ``'[' (U+005B)``."""
    return f"'{visible_controls(ch)}' (U+{ord(ch):04X})"


def check_identifier(kind: str, value: object) -> str | None:
    """The problem with ``value`` as a ``kind`` (an id kind, ``contributor`` or ``score``), or None
    when it follows the rule. A missing value is the caller's concern (None passes here)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"{kind} must be a string, found {type(value).__name__}"
    if kind in ID_KINDS:
        return _check(kind, value, _ID_BAD, ID_CHARS, ID_MAX) or _check_path(kind, value)
    if kind in SCORE_KINDS:
        return _check(kind, value, _SCORE_BAD, SCORE_CHARS, SCORE_MAX)
    if kind in NAME_KINDS:
        return _check_name(kind, value)
    raise ValueError(f"unknown identifier kind {kind!r}")


def _check(kind: str, value: str, bad: re.Pattern, chars: str, limit: int) -> str | None:
    if not value:
        return f"{kind} is empty"
    found = bad.search(value)
    if found:
        return (
            f"{kind} contains {describe_char(found.group())} at position {found.start()}, "
            f"outside the allowed characters {chars}"
        )
    if len(value) > limit:
        return f"{kind} is {len(value)} characters long (at most {limit})"
    return None


def _check_path(kind: str, value: str) -> str | None:
    if any(part in (".", "..") for part in value.split("/")):
        return f"{kind} has a '.' or '..' path segment"
    return None


def _check_name(kind: str, value: str) -> str | None:
    if not value.strip():
        return f"{kind} is empty"
    for i, ch in enumerate(value):
        if not ch.isprintable():
            return f"{kind} contains the control or invisible character {describe_char(ch)} at position {i}"
    if value != value.strip():
        return f"{kind} has leading or trailing spaces"
    if len(value) > NAME_MAX:
        return f"{kind} is {len(value)} characters long (at most {NAME_MAX})"
    return None
