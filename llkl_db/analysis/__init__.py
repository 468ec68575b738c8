"""The analyses of arXiv 2505.15353 as library functions over a dataset view (a
:class:`llkl_db.Dataset`, optionally filtered): trajectories and the diffusion exponent, layer
profiles, the KL scale of settings, and 2-D maps. Plots import matplotlib only when asked for.

    >>> import llkl_db
    >>> from llkl_db import analysis
    >>> ds = llkl_db.open()
    >>> analysis.trajectory(ds, "llkl-db/tiny-llama-0.6m").summary()
    >>> analysis.scale_table(ds).table
"""

from .exponent import LogLogFit, fit_loglog, window_fits
from .jumps import jump_keep_mask
from .layers import LayerProfile, layer_profile
from .map import EntryMap, entry_map
from .scale_table import ScaleTable, scale_table
from .settings import setting_pairs
from .trajectory import RunTrajectory, Trajectory, trajectory

__all__ = [
    "EntryMap",
    "LayerProfile",
    "LogLogFit",
    "RunTrajectory",
    "ScaleTable",
    "Trajectory",
    "entry_map",
    "fit_loglog",
    "jump_keep_mask",
    "layer_profile",
    "scale_table",
    "setting_pairs",
    "trajectory",
    "window_fits",
]
