"""The report's map of a DxMI agent's learned energy: how expert-like the expert looks, per cell.

``energy_map(agent, demos, drivable)`` draws, over the drivable map (grey: drivable, white:
not), the mean energy E(observation, expert action chunk) of the demonstration steps in each
cell (``agents.dxmi.expert_energy_grid``). Low energy is where the learned inverse-RL reward
finds the expert's behaviour typical; high energy marks places where the expert's actions are
unusual for what it observed (rare manoeuvres, few demonstrations). Returns base64 PNG text,
like the other figures of ``eval.plots``.
"""

from __future__ import annotations

import numpy as np

from agents.dxmi import expert_energy_grid
from eval.plots import plt, to_base64


def energy_grid_figure(grid: np.ndarray, drivable, title: str | None = None) -> str:
    """A (H, W) grid of energies (NaN: no data) over ``drivable``, as a base64 PNG."""
    figure, axes = plt.subplots(figsize=(6.0, 5.0))
    extent = drivable.extent
    axes.imshow(
        np.where(drivable.grid, 0.8, 1.0),
        origin="lower",
        extent=extent,
        cmap="gray",
        vmin=0,
        vmax=1,
    )
    finite = grid[np.isfinite(grid)]
    image = axes.imshow(
        np.ma.masked_invalid(grid),
        origin="lower",
        extent=extent,
        cmap="viridis",
        vmin=float(finite.min()) if finite.size else None,
        vmax=float(finite.max()) if finite.size else None,
    )
    figure.colorbar(image, ax=axes, label="mean energy of the expert's action (low = typical)")
    axes.set(xlabel="x (m)", ylabel="y (m)", aspect="equal")
    axes.set_title(title or "Learned energy (DxMI) of the expert's actions")
    return to_base64(figure)


def energy_map(agent, demos, drivable, title: str | None = None) -> str:
    """The figure of ``agent``'s energy on the expert's ``demos`` over the ``drivable`` map."""
    return energy_grid_figure(expert_energy_grid(agent, demos, drivable), drivable, title)
