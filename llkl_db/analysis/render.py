"""Writing maps: a PNG (matplotlib, imported only here) and a self-contained interactive HTML
page (inline SVG, a <title> per point and a few lines of inline JavaScript; no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llkl_db.errors import BadValueError, LlklError
from llkl_db.escape import for_html, for_html_attribute, for_matplotlib
from llkl_db.io.atomic import atomic_path, write_text_atomic

from .map import EntryMap


def pyplot():
    """matplotlib.pyplot on the Agg backend, or a clear error when the plot extra is missing."""
    try:
        import matplotlib
    except ImportError:
        raise LlklError("plots need matplotlib: pip install 'llkl-db[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: Path) -> None:
    """Save a matplotlib figure atomically (the format from the suffix)."""
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")


def write_png(m: EntryMap, out: Path, title: str | None = None) -> None:
    """The map as a PNG: points coloured as in the HTML page, runs as grey lines."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 6.5))
    for run in m.runs:
        ax.plot(m.xy[run, 0], m.xy[run, 1], "-", color="#999999", lw=0.8, zorder=1)
    ax.scatter(m.xy[:, 0], m.xy[:, 1], c=m.colours, s=22, edgecolors="white", linewidths=0.4, zorder=2)
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=c, label=for_matplotlib(label)) for label, c in m.legend[:20]
    ]
    ax.legend(
        handles=handles, title=for_matplotlib(m.color_by), fontsize=7, title_fontsize=8, loc="best", framealpha=0.8
    )
    ax.set_title(
        for_matplotlib(title)
        if title
        else f"{len(m.entry_ids)} entries, {m.method.upper()} of the double-centred log-likelihoods"
    )
    ax.set_xlabel(f"{m.method} 1")
    ax.set_ylabel(f"{m.method} 2")
    save_figure(fig, out)
    plt.close(fig)


_SCRIPT = """
const tip = document.getElementById('tip');
document.querySelectorAll('.pt').forEach(p => {
  p.addEventListener('mousemove', e => {
    tip.textContent = p.dataset.id + (p.dataset.v ? '  [' + p.dataset.v + ']' : '');
    tip.style.left = (e.pageX + 12) + 'px'; tip.style.top = (e.pageY + 12) + 'px'; tip.style.display = 'block';
  });
  p.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
});
"""


def render_html(m: EntryMap, title: str | None = None, width: int = 900, height: int = 700) -> str:
    """The map as one self-contained HTML page: hovering a point shows its entry id."""
    pad = 30
    xy = np.asarray(m.xy, dtype=np.float64)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    sx = pad + (xy[:, 0] - lo[0]) / span[0] * (width - 2 * pad)
    sy = height - pad - (xy[:, 1] - lo[1]) / span[1] * (height - 2 * pad)
    parts = []
    for run in m.runs:
        points = " ".join(f"{sx[i]:.1f},{sy[i]:.1f}" for i in run)
        parts.append(f'<polyline points="{points}" fill="none" stroke="#999" stroke-width="1"/>')
    for i, eid in enumerate(m.entry_ids):
        e = for_html_attribute(eid)
        v = for_html_attribute("" if m.values[i] is None else m.values[i])
        parts.append(
            f'<circle class="pt" cx="{sx[i]:.1f}" cy="{sy[i]:.1f}" r="5" fill="{for_html_attribute(m.colours[i])}" '
            f'data-id="{e}" data-v="{v}"><title>{for_html(eid)}</title></circle>'
        )
    legend = "".join(
        f'<span class="lg"><span class="sw" style="background:{for_html_attribute(c)}"></span>{for_html(label)}</span>'
        for label, c in m.legend
    )
    heading = for_html(title or f"llkl-db map: {len(m.entry_ids)} entries ({m.method.upper()})")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{heading}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; }}
svg {{ border: 1px solid #ddd; background: #fff; }}
.pt {{ stroke: #fff; stroke-width: 0.8; cursor: pointer; }}
.pt:hover {{ stroke: #000; stroke-width: 2; }}
#tip {{ position: absolute; display: none; background: #222; color: #fff; padding: 3px 6px;
        font: 12px monospace; border-radius: 3px; pointer-events: none; }}
.lg {{ margin-right: 12px; font-size: 13px; white-space: nowrap; }}
.sw {{ display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 4px; }}
</style></head><body>
<h3>{heading}</h3>
<div>{for_html(m.color_by)}: {legend}</div>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">
{chr(10).join(parts)}
</svg>
<div id="tip"></div>
<p style="font-size:12px;color:#666">Hover a point for its entry id. Grey lines join the checkpoints of a training run in step order.</p>
<script>{_SCRIPT}</script>
</body></html>
"""


def write_map(m: EntryMap, out: Path, title: str | None = None) -> None:
    """Write ``m`` as PNG (.png) or HTML (.html/.htm)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".png":
        write_png(m, out, title)
    elif suffix in (".html", ".htm"):
        write_text_atomic(out, render_html(m, title))
    else:
        raise BadValueError("out", str(out), "use a .png or .html file")
