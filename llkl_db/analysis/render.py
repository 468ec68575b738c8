"""Writing maps: a PNG (matplotlib, imported only here) and a self-contained HTML explorer (one
file, inline canvas and hand-written JavaScript, no network): zoom and pan, hover and click on
every point (a list of what lies under the cursor), search over entry ids, each entry's k
nearest entries with KL ± SE and their level, colour by family, model type, kind or a benchmark
score, a legend that toggles groups, checkpoints of a run joined in step order."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from llkl_db.errors import BadValueError, LlklError
from llkl_db.escape import for_html, for_json_in_html_script, for_matplotlib
from llkl_db.install import install_hint
from llkl_db.io.atomic import atomic_path, write_text_atomic

from .colors import MISSING, PALETTE, assign, ramp
from .map import EntryMap


def pyplot():
    """matplotlib.pyplot on the Agg backend, or a clear error when the plot extra is missing."""
    try:
        import matplotlib
    except ImportError:
        raise LlklError(f"plots need matplotlib: {install_hint('plot')}") from None
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


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
html, body { margin: 0; height: 100%; font-family: sans-serif; font-size: 13px; }
#app { display: flex; height: 100%; }
#main { flex: 1; display: flex; flex-direction: column; min-width: 0; }
#top { padding: 6px 10px; border-bottom: 1px solid #ddd; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
#top h1 { font-size: 15px; margin: 0; }
#note { color: #666; font-size: 12px; }
#plot { flex: 1; position: relative; overflow: hidden; background: #fff; }
#canvas { position: absolute; left: 0; top: 0; cursor: crosshair; }
#tip { position: absolute; display: none; background: rgba(20,20,20,.92); color: #fff; padding: 3px 6px;
       font: 12px monospace; border-radius: 3px; pointer-events: none; max-width: 480px; white-space: pre; z-index: 2; }
#side { width: 380px; border-left: 1px solid #ddd; overflow-y: auto; padding: 8px 10px; box-sizing: border-box; }
#side h2 { font-size: 13px; margin: 12px 0 4px; }
#search { width: 100%; box-sizing: border-box; padding: 4px; }
ul.list { list-style: none; margin: 0; padding: 0; max-height: 200px; overflow-y: auto; }
ul.list li { padding: 1px 3px; cursor: pointer; font-family: monospace; font-size: 12px; word-break: break-all; }
ul.list li:hover, #nbtable tbody tr:hover { background: #eef; }
#legend li { font-family: sans-serif; }
#legend li.off { opacity: .35; text-decoration: line-through; }
.sw { display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 5px; vertical-align: middle; }
#nbtable { border-collapse: collapse; width: 100%; font-size: 12px; }
#nbtable td, #nbtable th { padding: 1px 3px; text-align: left; vertical-align: top; }
#nbtable td.id { font-family: monospace; word-break: break-all; }
#nbtable td.kl, #nbtable td.se { text-align: right; white-space: nowrap; }
#nbtable tbody tr { cursor: pointer; }
#selected { font-family: monospace; word-break: break-all; }
button { font-size: 12px; }
.muted { color: #777; }
</style></head><body>
<div id="app">
<div id="main">
<div id="top"><h1>__TITLE__</h1><span id="note">__NOTE__</span>
<label>colour by <select id="colorby"></select></label>
<button id="zin" title="zoom in">+</button><button id="zout" title="zoom out">&minus;</button><button id="zreset" title="show every point">fit all</button><button id="zbulk" title="the 2nd to 98th percentile of the points">fit bulk</button>
</div>
<div id="plot"><canvas id="canvas"></canvas><div id="tip"></div></div>
</div>
<div id="side">
<input id="search" type="search" placeholder="search model or entry id" autocomplete="off">
<ul id="results" class="list"></ul>
<h2>Selected</h2>
<div id="selected" class="muted">none: click a point or search</div>
<table id="nbtable"><thead><tr><th>#</th><th>nearest entry</th><th>KL bits/byte</th><th>± SE</th><th>level</th></tr></thead><tbody id="neighbours"></tbody></table>
<h2>Under the cursor <span id="undercount" class="muted"></span></h2>
<ul id="under" class="list"></ul>
<h2>Legend <span class="muted">(click to hide or show)</span></h2>
<ul id="legend" class="list" style="max-height: 320px"></ul>
<p class="muted">Scroll to zoom, drag to pan. Grey lines join the checkpoints of a training run in step order.
Selecting an entry rings its nearest entries (KL from llkl-db nearest).</p>
</div>
</div>
<script>
const EXPLORER_DATA = __DATA__;
__SCRIPT__</script>
</body></html>
"""

_SCRIPT = r"""
(function () {
  'use strict';
  const D = EXPLORER_DATA;
  const n = D.ids.length;
  const X = new Float64Array(n), Y = new Float64Array(n);
  for (let i = 0; i < n; i++) { X[i] = D.xy[2 * i]; Y[i] = D.xy[2 * i + 1]; }
  const lowerIds = D.ids.map(s => s.toLowerCase());
  const R = 4, HIT = 6, MAX_LIST = 200;
  const plot = document.getElementById('plot'), canvas = document.getElementById('canvas');
  const ctx = canvas.getContext('2d'), tip = document.getElementById('tip');
  let W = 0, H = 0, s = 1, tx = 0, ty = 0;
  let colouring = D.colourings[D.initial] || D.colourings[0];
  let hidden = new Set(), selected = -1, hovered = [];

  // --- a grid over the data coordinates: what lies under the cursor, at any zoom -------------
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    minX = Math.min(minX, X[i]); maxX = Math.max(maxX, X[i]); minY = Math.min(minY, Y[i]); maxY = Math.max(maxY, Y[i]);
  }
  const cell = Math.max((Math.max(maxX - minX, maxY - minY) || 1) / Math.max(1, Math.sqrt(n / 2)), 1e-6);
  const grid = new Map();
  const key = (cx, cy) => cx * 1000003 + cy;
  for (let i = 0; i < n; i++) {
    const k = key(Math.floor((X[i] - minX) / cell), Math.floor((Y[i] - minY) / cell));
    let list = grid.get(k); if (!list) { list = []; grid.set(k, list); } list.push(i);
  }
  function visible(i) { return !hidden.has(colouring.codes[i]); }
  function pointsNear(px, py, radius) {
    const dx = (px - tx) / s, dy = (ty - py) / s, r = radius / s;
    const c0 = Math.floor((dx - r - minX) / cell), c1 = Math.floor((dx + r - minX) / cell);
    const r0 = Math.floor((dy - r - minY) / cell), r1 = Math.floor((dy + r - minY) / cell);
    const found = [];
    if ((c1 - c0 + 1) * (r1 - r0 + 1) > 4 * grid.size) {
      for (let i = 0; i < n; i++) { const d = Math.hypot(X[i] - dx, Y[i] - dy); if (d <= r && visible(i)) found.push([d, i]); }
    } else {
      for (let cx = c0; cx <= c1; cx++) for (let cy = r0; cy <= r1; cy++) {
        const list = grid.get(key(cx, cy)); if (!list) continue;
        for (const i of list) { const d = Math.hypot(X[i] - dx, Y[i] - dy); if (d <= r && visible(i)) found.push([d, i]); }
      }
    }
    found.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    return found.map(f => f[1]);
  }

  // --- view -----------------------------------------------------------------------------------
  function fitBox(x0, x1, y0, y1) {
    const pad = 20, sw = Math.max(x1 - x0, 1e-9), sh = Math.max(y1 - y0, 1e-9);
    s = Math.min((W - 2 * pad) / sw, (H - 2 * pad) / sh);
    tx = (W - (x1 - x0) * s) / 2 - x0 * s;
    ty = H - ((H - (y1 - y0) * s) / 2 - y0 * s);
  }
  function fit() { fitBox(minX, maxX, minY, maxY); }
  // A few far points (logit-lens layers, say) would squeeze the rest into a corner: the first
  // view fits the 2nd to 98th percentile of each axis, and "fit all" shows everything.
  function quantile(values, q) { const v = Array.from(values).sort((a, b) => a - b); return v[Math.min(v.length - 1, Math.max(0, Math.round(q * (v.length - 1))))]; }
  function fitBulk() {
    if (n < 20) { fit(); return; }
    let x0 = quantile(X, 0.02), x1 = quantile(X, 0.98), y0 = quantile(Y, 0.02), y1 = quantile(Y, 0.98);
    const mx = 0.1 * (x1 - x0), my = 0.1 * (y1 - y0);
    x0 -= mx; x1 += mx; y0 -= my; y1 += my;
    if ((x1 - x0) * (y1 - y0) > 0.25 * (maxX - minX) * (maxY - minY)) { fit(); return; }
    fitBox(x0, x1, y0, y1);
  }
  function resize() {
    const dpr = window.devicePixelRatio || 1;
    const first = W === 0;
    W = plot.clientWidth; H = plot.clientHeight;
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
    canvas.style.width = W + 'px'; canvas.style.height = H + 'px';
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (first) fitBulk();
    draw();
  }
  const sx = i => tx + X[i] * s, sy = i => ty - Y[i] * s;
  let pending = false;
  function draw() { if (!pending) { pending = true; requestAnimationFrame(paint); } }
  function paint() {
    pending = false;
    ctx.clearRect(0, 0, W, H);
    ctx.lineWidth = 1; ctx.strokeStyle = '#aaa'; ctx.beginPath();
    for (const run of D.runs) {
      let open = false;
      for (const i of run) {
        if (!visible(i)) { open = false; continue; }
        if (open) ctx.lineTo(sx(i), sy(i)); else { ctx.moveTo(sx(i), sy(i)); open = true; }
      }
    }
    ctx.stroke();
    const groups = colouring.labels.map(() => []);
    for (let i = 0; i < n; i++) {
      const x = sx(i), y = sy(i);
      if (x < -R || y < -R || x > W + R || y > H + R || !visible(i)) continue;
      groups[colouring.codes[i]].push(i);
    }
    ctx.lineWidth = 0.6; ctx.strokeStyle = '#fff';
    groups.forEach((list, g) => {
      if (!list.length) return;
      ctx.fillStyle = colouring.colours[g]; ctx.beginPath();
      for (const i of list) { const x = sx(i), y = sy(i); ctx.moveTo(x + R, y); ctx.arc(x, y, R, 0, 2 * Math.PI); }
      ctx.fill(); if (n <= 5000) ctx.stroke();
    });
    if (selected >= 0) {
      const nb = neighboursOf(selected);
      ctx.strokeStyle = '#e6550d'; ctx.lineWidth = 1.2; ctx.beginPath();
      for (const r of nb) { ctx.moveTo(sx(selected), sy(selected)); ctx.lineTo(sx(r.i), sy(r.i)); }
      ctx.stroke();
      ctx.lineWidth = 2.5;
      for (const r of nb) { ctx.beginPath(); ctx.arc(sx(r.i), sy(r.i), R + 3, 0, 2 * Math.PI); ctx.stroke(); }
      ctx.strokeStyle = '#000'; ctx.lineWidth = 3;
      ctx.beginPath(); ctx.arc(sx(selected), sy(selected), R + 5, 0, 2 * Math.PI); ctx.stroke();
    }
    if (hovered.length) {
      ctx.strokeStyle = '#000'; ctx.lineWidth = 1.5; ctx.beginPath();
      ctx.arc(sx(hovered[0]), sy(hovered[0]), R + 2, 0, 2 * Math.PI); ctx.stroke();
    }
  }
  function zoomAt(px, py, factor) {
    const f = Math.min(Math.max(factor, 1e-3), 1e3);
    tx = px - (px - tx) * f; ty = py - (py - ty) * f; s *= f; draw();
  }

  // --- lists (every text from the data goes in as textContent) ----------------------------------
  function li(text, i, parent) {
    const el = document.createElement('li'); el.textContent = text; el.dataset.i = i;
    el.addEventListener('click', () => select(i, true)); parent.appendChild(el); return el;
  }
  function fillList(ul, items) {
    ul.replaceChildren();
    for (const i of items.slice(0, MAX_LIST)) li(D.ids[i], i, ul);
    if (items.length > MAX_LIST) {
      const more = document.createElement('li'); more.className = 'muted';
      more.textContent = '… and ' + (items.length - MAX_LIST) + ' more (zoom in)'; ul.appendChild(more);
    }
  }
  function neighboursOf(i) {
    const out = [];
    for (let j = D.nb_offsets[i]; j < D.nb_offsets[i + 1]; j++) {
      out.push({ i: D.nb_index[j], kl: D.nb_kl[j], se: D.nb_se[j], level: D.levels[D.nb_level[j]] });
    }
    return out;
  }
  function select(i, centre) {
    selected = i;
    const box = document.getElementById('selected');
    box.className = '';
    box.textContent = D.ids[i] + '  [' + colouring.name + ': ' + colouring.labels[colouring.codes[i]] + ']';
    const body = document.getElementById('neighbours');
    body.replaceChildren();
    neighboursOf(i).forEach((r, rank) => {
      const tr = document.createElement('tr'); tr.dataset.i = r.i; tr.dataset.id = D.ids[r.i];
      for (const [cls, text] of [['rank', String(rank + 1)], ['id', D.ids[r.i]], ['kl', r.kl], ['se', '± ' + r.se], ['level', r.level]]) {
        const td = document.createElement('td'); td.className = cls; td.textContent = text; tr.appendChild(td);
      }
      tr.addEventListener('click', () => select(r.i, true));
      body.appendChild(tr);
    });
    if (!D.nb_index.length) {
      const tr = document.createElement('tr'), td = document.createElement('td');
      td.colSpan = 5; td.className = 'muted'; td.textContent = 'no neighbours in this page (written without them)';
      tr.appendChild(td); body.appendChild(tr);
    }
    if (centre) {
      const x = sx(i), y = sy(i);
      if (x < 0 || y < 0 || x > W || y > H) { tx += W / 2 - x; ty += H / 2 - y; }
    }
    draw();
  }
  function buildLegend() {
    const ul = document.getElementById('legend'); ul.replaceChildren();
    const counts = colouring.labels.map(() => 0);
    for (let i = 0; i < n; i++) counts[colouring.codes[i]]++;
    colouring.labels.forEach((label, g) => {
      const el = document.createElement('li'); el.dataset.g = g;
      const sw = document.createElement('span'); sw.className = 'sw'; sw.style.background = colouring.colours[g];
      el.appendChild(sw); el.appendChild(document.createTextNode(label + ' (' + counts[g] + ')'));
      if (hidden.has(g)) el.className = 'off';
      el.addEventListener('click', () => {
        if (hidden.has(g)) hidden.delete(g); else hidden.add(g);
        el.className = hidden.has(g) ? 'off' : ''; draw();
      });
      ul.appendChild(el);
    });
  }
  const sel = document.getElementById('colorby');
  D.colourings.forEach((c, j) => {
    const o = document.createElement('option'); o.value = j; o.textContent = c.name; sel.appendChild(o);
  });
  sel.value = String(D.colourings.indexOf(colouring));
  sel.addEventListener('change', () => {
    colouring = D.colourings[+sel.value]; hidden = new Set(); buildLegend();
    if (selected >= 0) select(selected, false); else draw();
  });

  // --- search ---------------------------------------------------------------------------------
  const search = document.getElementById('search'), results = document.getElementById('results');
  function matches(q) {
    q = q.trim().toLowerCase(); if (!q) return [];
    const exact = [], starts = [], inside = [];
    for (let i = 0; i < n; i++) {
      const t = lowerIds[i];
      if (t === q) exact.push(i); else if (t.startsWith(q)) starts.push(i); else if (t.includes(q)) inside.push(i);
      if (exact.length + starts.length > 50) break;
    }
    return exact.concat(starts, inside).slice(0, 50);
  }
  search.addEventListener('input', () => fillList(results, matches(search.value)));
  search.addEventListener('keydown', e => {
    if (e.key === 'Enter') { const m = matches(search.value); if (m.length) select(m[0], true); }
  });

  // --- mouse ----------------------------------------------------------------------------------
  let drag = null;
  function local(e) { const r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; }
  function hover(e) {
    const [px, py] = local(e);
    hovered = pointsNear(px, py, HIT);
    document.getElementById('undercount').textContent = hovered.length ? '(' + hovered.length + ')' : '';
    fillList(document.getElementById('under'), hovered);
    if (hovered.length) {
      const shown = hovered.slice(0, 12).map(i => D.ids[i]);
      if (hovered.length > 12) shown.push('… and ' + (hovered.length - 12) + ' more');
      tip.textContent = shown.join('\n'); tip.style.display = 'block';
      tip.style.left = Math.min(px + 14, Math.max(0, W - 300)) + 'px'; tip.style.top = (py + 14) + 'px';
    } else tip.style.display = 'none';
    draw();
  }
  canvas.addEventListener('mousedown', e => { const [px, py] = local(e); drag = { px, py, tx, ty, moved: false }; });
  window.addEventListener('mousemove', e => {
    if (!drag) return;
    const [px, py] = local(e);
    if (Math.abs(px - drag.px) + Math.abs(py - drag.py) > 3) drag.moved = true;
    if (drag.moved) { tx = drag.tx + px - drag.px; ty = drag.ty + py - drag.py; draw(); }
  });
  window.addEventListener('mouseup', e => {
    if (drag && !drag.moved && e.target === canvas) {
      const [px, py] = local(e); const under = pointsNear(px, py, HIT);
      if (under.length) select(under[0], false);
    }
    drag = null;
  });
  canvas.addEventListener('mousemove', e => { if (!drag || !drag.moved) hover(e); });
  canvas.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
  canvas.addEventListener('wheel', e => {
    e.preventDefault(); const [px, py] = local(e); zoomAt(px, py, Math.exp(-e.deltaY * 0.0015));
  }, { passive: false });
  document.getElementById('zin').addEventListener('click', () => zoomAt(W / 2, H / 2, 1.5));
  document.getElementById('zout').addEventListener('click', () => zoomAt(W / 2, H / 2, 1 / 1.5));
  document.getElementById('zreset').addEventListener('click', () => { fit(); draw(); });
  document.getElementById('zbulk').addEventListener('click', () => { fitBulk(); draw(); });
  window.addEventListener('resize', resize);

  buildLegend();
  resize();
  // For scripts and tests: where a point is drawn (viewport coordinates), and the current state.
  window.explorer = {
    ids: D.ids,
    screenPosition(i) { const r = canvas.getBoundingClientRect(); return [r.left + sx(i), r.top + sy(i)]; },
    underCursor() { return hovered.map(i => D.ids[i]); },
    select(i) { select(i, true); },
    resetView() { fit(); draw(); },
    ready: true,
  };
})();
"""


NUMERIC_BINS = 8
MAX_CATEGORIES = 12  # numbers with at most this many distinct values stay categories (seed, layer)


def _colouring(name: str, values: list) -> dict:
    """A colouring for the explorer: labels and colours of its groups and each entry's group
    index. Numbers with many distinct values fall in equal bins (log bins over three decades)."""
    present = [v for v in values if v is not None]
    numeric = bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    labels: list[str] = []
    colours: list[str] = []
    codes: list[int] = []
    if numeric and len(set(present)) > MAX_CATEGORIES:
        _, legend, _ = assign(present)  # the same log rule as the PNG
        use_log = legend[-1][0].endswith("(log)")
        lo, hi = min(present), max(present)
        f = (lambda v: np.log10(1.0 + v)) if use_log else float
        a, b = f(lo), f(hi)
        span = (b - a) or 1.0
        edges = [a + span * i / NUMERIC_BINS for i in range(NUMERIC_BINS + 1)]
        back = (lambda t: 10**t - 1.0) if use_log else (lambda t: t)
        for i in range(NUMERIC_BINS):
            labels.append(
                f"{back(edges[i]):.4g} – {back(edges[i + 1]):.4g}" + (" (log bins)" if use_log and i == 0 else "")
            )
            colours.append(ramp(i / (NUMERIC_BINS - 1)))
        for v in values:
            codes.append(-1 if v is None else min(int((f(v) - a) / span * NUMERIC_BINS), NUMERIC_BINS - 1))
    else:
        if numeric:
            ordered = sorted(set(present))
        else:
            counts: dict[str, int] = {}
            for v in present:
                counts[str(v)] = counts.get(str(v), 0) + 1
            ordered = sorted(counts, key=lambda c: -counts[c])
        lookup = {str(c): i for i, c in enumerate(ordered)}
        labels = [f"{c:g}" if isinstance(c, float) else str(c) for c in ordered]
        colours = [PALETTE[i % len(PALETTE)] for i in range(len(labels))]
        codes = [-1 if v is None else lookup[str(v)] for v in values]
    if any(c == -1 for c in codes):
        labels.append("(none)")
        colours.append(MISSING)
        codes = [len(labels) - 1 if c == -1 else c for c in codes]
    return {"name": name, "labels": labels, "colours": colours, "codes": codes}


def explorer_data(m: EntryMap, title: str | None = None) -> dict:
    """Everything the explorer page needs, as plain JSON-able data (coordinates scaled to 0..1000
    on the longer axis, aspect kept; neighbours as formatted strings, the precision the CLI prints)."""
    xy = np.asarray(m.xy, dtype=np.float64)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = float((hi - lo).max()) or 1.0
    scaled = (xy - lo) / span * 1000.0
    colourings = dict(m.colourings) or {m.color_by: m.values}
    colourings.setdefault(m.color_by, m.values)
    names = list(colourings)
    levels: list[str] = []
    offsets, nb_index, nb_kl, nb_se, nb_level = [0], [], [], [], []
    for row in m.neighbours or [[] for _ in m.entry_ids]:
        for j, kl, se, level in row:
            if level not in levels:
                levels.append(level)
            nb_index.append(int(j))
            nb_kl.append(f"{kl:.4g}")
            nb_se.append(f"{se:.2g}")
            nb_level.append(levels.index(level))
        offsets.append(len(nb_index))
    return {
        "title": title or f"llkl-db map: {len(m.entry_ids)} entries ({m.method.upper()})",
        "method": m.method,
        "method_note": m.method_note,
        "ids": list(m.entry_ids),
        "xy": [round(float(v), 2) for v in scaled.reshape(-1)],
        "colourings": [_colouring(n, colourings[n]) for n in names],
        "initial": names.index(m.color_by),
        "runs": [list(map(int, r)) for r in m.runs],
        "k": max((len(r) for r in m.neighbours), default=0) if m.neighbours else 0,
        "levels": levels,
        "nb_offsets": offsets,
        "nb_index": nb_index,
        "nb_kl": nb_kl,
        "nb_se": nb_se,
        "nb_level": nb_level,
    }


def render_html(m: EntryMap, title: str | None = None) -> str:
    """The map as one self-contained HTML explorer (no network): see the module docstring."""
    data = explorer_data(m, title)
    parts = {
        "TITLE": for_html(data["title"]),
        "NOTE": for_html(f"{len(m.entry_ids)} entries; {m.method_note or m.method}"),
        "DATA": for_json_in_html_script(data),
        "SCRIPT": _SCRIPT,
    }
    # One pass: a value that contains a placeholder's name is never substituted again.
    return re.sub(r"__(TITLE|NOTE|DATA|SCRIPT)__", lambda match: parts[match.group(1)], _PAGE)


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
