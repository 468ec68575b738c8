"""Colours shared by the PNG and HTML maps: a categorical palette and a viridis-like ramp."""

from __future__ import annotations

import math

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#7b4173", "#3182bd",
)  # fmt: skip
MISSING = "#bbbbbb"
_RAMP = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def ramp(t: float) -> str:
    """A colour for t in [0, 1] on a viridis-like ramp."""
    t = min(1.0, max(0.0, t))
    pos = t * (len(_RAMP) - 1)
    i = min(int(pos), len(_RAMP) - 2)
    f = pos - i
    rgb = [round(a + (b - a) * f) for a, b in zip(_RAMP[i], _RAMP[i + 1], strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def assign(values: list) -> tuple[list[str], list[tuple[str, str]], bool]:
    """Colours for ``values``: numbers on the ramp (log scale for non-negative ranges over three
    decades), anything else by category. Returns the colours, the legend (label, colour) and
    whether the scale is numeric."""
    present = [v for v in values if v is not None]
    numeric = bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    if numeric:
        lo, hi = min(present), max(present)
        use_log = lo >= 0 and hi > 0 and hi / max(lo, 1) >= 1000
        f = (lambda v: math.log10(1 + v)) if use_log else float
        a, b = f(lo), f(hi)
        span = (b - a) or 1.0
        colours = [MISSING if v is None else ramp((f(v) - a) / span) for v in values]
        legend = [(f"{lo:g}", ramp(0.0)), (f"{hi:g}" + (" (log)" if use_log else ""), ramp(1.0))]
        return colours, legend, True
    categories = list(dict.fromkeys(str(v) for v in present))
    lookup = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(categories)}
    colours = [MISSING if v is None else lookup[str(v)] for v in values]
    legend = [(c, lookup[c]) for c in categories] + ([("(none)", MISSING)] if len(present) < len(values) else [])
    return colours, legend, False
