"""The memory budget of whole-matrix work: refuse, in one line, what would not fit.

The budget is half of physical memory unless ``LLKL_DB_MEMORY_BUDGET`` says otherwise (bytes,
or with a unit: 512M, 8G, 1.5T).
"""

from __future__ import annotations

import os

from llkl_db.errors import LlklError

ENV = "LLKL_DB_MEMORY_BUDGET"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def budget_bytes() -> int:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return physical_memory() // 2
    text = raw.upper().removesuffix("B").removesuffix("I")
    unit = text[-1] if text and text[-1] in _UNITS else ""
    try:
        value = float(text[: len(text) - len(unit)] if unit else text)
    except ValueError:
        raise LlklError(f"{ENV}={raw!r}: expected bytes, e.g. 8G or 512M") from None
    return int(value * _UNITS[unit])


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def require_memory(nbytes: int, what: str) -> None:
    """Refuse ``what`` when it needs more than the budget."""
    budget = budget_bytes()
    if nbytes > budget:
        raise LlklError(
            f"{what} needs about {human(nbytes)} of memory, over the budget of {human(budget)} "
            f"(half of physical memory; set {ENV} to change it)"
        )
