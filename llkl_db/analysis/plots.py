"""Figures of trajectories and layer profiles (matplotlib, imported only when asked for)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llkl_db.escape import for_matplotlib

from .layers import LayerProfile
from .render import pyplot, save_figure
from .trajectory import Trajectory


def plot_trajectory(t: Trajectory, out: Path) -> None:
    """Left: KL to the previous and to the final checkpoint against the step; right: the exponent
    c from every start t0 (and the weight-space exponent when known)."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, run in enumerate(t.runs):
        colour = f"C{k % 10}"
        label = for_matplotlib(run.model_id.split("/")[-1])
        steps = np.asarray(run.checkpoints["step"].to_list(), dtype=float)
        prev = np.asarray(run.checkpoints["kl_prev_bpb"].fill_null(np.nan).to_list(), dtype=float)
        final = np.asarray(run.checkpoints["kl_final_bpb"].to_list(), dtype=float)
        left.plot(steps[1:] + 1, prev[1:], "o-", ms=3, color=colour, label=f"{label}: to previous")
        left.plot(steps[:-1] + 1, final[:-1], "s--", ms=3, color=colour, alpha=0.6, label=f"{label}: to final")
        if run.fits.height:
            right.plot(np.asarray(run.fits["t0"]) + 1, run.fits["c"], "o-", ms=3, color=colour, label=f"{label}: c")
            if "c_w" in run.fits.columns:
                right.plot(
                    np.asarray(run.fits["t0"]) + 1, run.fits["c_w"], "^:", ms=3, color=colour, label=f"{label}: c_w"
                )
    left.set(
        xscale="log",
        yscale="log",
        xlabel="step + 1",
        ylabel="KL (bits/byte)",
        title=f"{for_matplotlib(t.model)}: KL along training",
    )
    right.set(xscale="log", xlabel="t0 + 1", ylabel="exponent", title=f"diffusion exponent (window {t.window})")
    right.axhline(1.0, color="#999", lw=0.8)
    left.legend(fontsize=6)
    right.legend(fontsize=6)
    save_figure(fig, out)
    plt.close(fig)


def plot_layers(p: LayerProfile, out: Path) -> None:
    """KL between adjacent listed layers and from each layer to the output, against the layer."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    layers = np.asarray(p.table["layer"].to_list(), dtype=float)
    nxt = np.asarray(p.table["kl_next_bpb"].fill_null(np.nan).to_list(), dtype=float)
    ax.plot(layers[:-1], nxt[:-1], "o-", label="to the next listed layer")
    ax.plot(layers[:-1], p.table["kl_output_bpb"].to_list()[:-1], "s--", label="to the output")
    ax.set(
        yscale="log",
        xlabel="layer (last = output)",
        ylabel="KL (bits/byte)",
        title=f"{for_matplotlib(p.model_id)}: logit lens",
    )
    ax.legend(fontsize=8)
    save_figure(fig, out)
    plt.close(fig)
