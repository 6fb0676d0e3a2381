"""The report's figures, drawn with matplotlib's Agg backend and returned as base64 PNG text.

Base64 PNGs embed in the HTML, so report.html is one self-contained file.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SIM_COLOUR = "#4C72B0"
REAL_COLOUR = "#DD8452"
FORECAST_COLOUR = "#55A868"
FAIL_COLOUR = "#C44E52"


def to_base64(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def image_to_base64(rgb: np.ndarray) -> str:
    """An (H, W, 3) image in [0, 1] or uint8 as a base64 PNG."""
    import cv2

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - encoding an in-memory array does not fail
        raise RuntimeError("PNG encoding failed")
    return base64.b64encode(data.tobytes()).decode("ascii")


def _error(value: float, low: float, high: float) -> np.ndarray:
    return np.array([[value - low], [high - value]])


def sim_vs_real_scatter(points: Sequence[Mapping], curve: Mapping[str, np.ndarray] | None) -> str:
    """Agents as points (Wilson intervals both ways), the fitted mapping with its bands, identity."""
    figure, axes = plt.subplots(figsize=(6.2, 5.2))
    axes.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="sim = real")
    if curve is not None:
        axes.fill_between(
            curve["sim"],
            curve["prediction_low"],
            curve["prediction_high"],
            color=FORECAST_COLOUR,
            alpha=0.12,
            label="95% prediction band (a new agent)",
        )
        axes.fill_between(
            curve["sim"],
            curve["line_low"],
            curve["line_high"],
            color=FORECAST_COLOUR,
            alpha=0.3,
            label="95% band of the fitted mapping",
        )
        axes.plot(
            curve["sim"],
            curve["median"],
            color=FORECAST_COLOUR,
            lw=2,
            label="fitted sim-to-real mapping",
        )
    for point in points:
        sim, real = point["sim"], point.get("real")
        if real is None:
            axes.axvline(sim["value"], color=SIM_COLOUR, alpha=0.25, lw=1)
            axes.annotate(
                point["agent"] + " (sim only)",
                (sim["value"], 0.02),
                rotation=90,
                fontsize=8,
                color=SIM_COLOUR,
            )
            continue
        axes.errorbar(
            sim["value"],
            real["value"],
            xerr=_error(sim["value"], sim["low"], sim["high"]),
            yerr=_error(real["value"], real["low"], real["high"]),
            fmt="o",
            color=REAL_COLOUR,
            ecolor="#999999",
            capsize=3,
        )
        axes.annotate(
            point["agent"],
            (sim["value"], real["value"]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=9,
        )
    axes.set(
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
        xlabel="simulated success rate",
        ylabel="real success rate",
    )
    axes.set_title("Simulated vs real success per agent")
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(alpha=0.3)
    return to_base64(figure)


def condition_bars(
    rows: Sequence[Mapping], agents: Sequence[str], conditions: Sequence[str]
) -> str:
    """Success per agent and condition: sim and real side by side, with Wilson 95% intervals."""
    figure, all_axes = plt.subplots(
        1,
        len(conditions),
        figsize=(max(6.0, 3.2 * len(conditions)), 3.8),
        sharey=True,
        squeeze=False,
    )
    index = {(r["agent"], r["condition"]): r for r in rows}
    x = np.arange(len(agents))
    for axes, condition in zip(all_axes[0], conditions, strict=True):
        for offset, source, colour in ((-0.2, "sim", SIM_COLOUR), (0.2, "real", REAL_COLOUR)):
            for i, agent in enumerate(agents):
                entry = index.get((agent, condition), {}).get(source)
                if not entry or entry["value"] is None:
                    continue
                axes.bar(
                    x[i] + offset,
                    entry["value"],
                    width=0.38,
                    color=colour,
                    label=source if i == 0 else None,
                )
                axes.errorbar(
                    x[i] + offset,
                    entry["value"],
                    yerr=_error(entry["value"], entry["low"], entry["high"]),
                    color="black",
                    capsize=3,
                    lw=1,
                )
        axes.set_xticks(x, agents, rotation=30, ha="right")
        axes.set_title(f"condition: {condition}")
        axes.set_ylim(0, 1.05)
        axes.grid(axis="y", alpha=0.3)
    all_axes[0][0].set_ylabel("success rate (95% Wilson)")
    handles, labels = all_axes[0][0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    figure.tight_layout()
    figure.legend(
        unique.values(), unique.keys(), loc="lower center", ncol=2, bbox_to_anchor=(0.5, 1.0)
    )
    return to_base64(figure)


def forecast_plot(forecasts: Sequence[Mapping]) -> str:
    """Per agent: the forecast with its interval, the sim rate, and the observed real rate if any."""
    figure, axes = plt.subplots(figsize=(4.6, 0.5 * len(forecasts) + 1.3))
    for i, item in enumerate(forecasts):
        f = item["forecast"]
        axes.errorbar(
            f["median"],
            i,
            xerr=_error(f["median"], f["low"], f["high"]),
            fmt="s",
            color=FORECAST_COLOUR,
            capsize=4,
            label="forecast (95%)" if i == 0 else None,
        )
        axes.plot(
            f["sim_rate"],
            i,
            "o",
            mfc="none",
            color=SIM_COLOUR,
            label="simulated" if i == 0 else None,
        )
        if item.get("real"):
            axes.plot(
                item["real"]["value"],
                i,
                "D",
                color=REAL_COLOUR,
                label="observed real"
                if "observed real" not in axes.get_legend_handles_labels()[1]
                else None,
            )
    axes.set_yticks(range(len(forecasts)), [item["agent"] for item in forecasts])
    axes.set(xlim=(0, 1), xlabel="success rate")
    axes.invert_yaxis()
    axes.grid(axis="x", alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    axes.set_title("Forecast real success")
    return to_base64(figure)


def trajectories_on_map(
    drivable, trajectories: Mapping[str, Sequence[Mapping]], goals: np.ndarray | None
) -> str:
    """One panel per agent: its episodes over the top-down drivable map, green = success."""
    names = list(trajectories)
    columns = min(3, max(1, len(names)))
    rows = int(np.ceil(len(names) / columns))
    figure, all_axes = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 4.0 * rows), squeeze=False
    )
    for axes in all_axes.flat[len(names) :]:
        axes.axis("off")
    for axes, name in zip(all_axes.flat, names, strict=False):
        axes.imshow(
            drivable.grid,
            origin="lower",
            extent=drivable.extent,
            cmap="Greys_r",
            vmin=-0.6,
            vmax=1.3,
        )
        for episode in trajectories[name]:
            colour = FORECAST_COLOUR if episode["success"] else FAIL_COLOUR
            axes.plot(episode["x"], episode["y"], color=colour, lw=1.2, alpha=0.8)
            axes.plot(episode["x"][:1], episode["y"][:1], "o", color=colour, ms=3)
        if goals is not None and len(goals):
            axes.scatter(
                goals[:, 0],
                goals[:, 1],
                marker="*",
                s=90,
                color="gold",
                edgecolor="black",
                zorder=3,
            )
        wins = sum(bool(e["success"]) for e in trajectories[name])
        axes.set_title(f"{name}: {wins}/{len(trajectories[name])} reached the goal", fontsize=10)
        axes.set_aspect("equal")
        axes.set_xlabel("x (m)")
        axes.set_ylabel("y (m)")
    figure.tight_layout()
    return to_base64(figure)
