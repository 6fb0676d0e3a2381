"""The report's section "Teams": multi-robot runs per condition, and one episode on the map.

For every agent of the campaign whose records are team records (``eval.team_records``): per
condition, the team success rate (every robot arrived) and the rate of episodes in which two
robots touched, each with its interval (``eval.metrics.rate``), the scene-collision rate and
the mean episode time; and a top-down drivable map with every robot's trajectory in one
episode (a team success when there is one, so the map shows the robots passing each other,
else one where the most robots arrived),
each robot in its own colour from its start (circle) to its goal (star).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eval import metrics, plots
from eval.rollouts import Campaign

ROBOT_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def team_summary(campaign: Campaign, confidence: float) -> list[dict[str, Any]]:
    """A row per team agent and condition (empty when the campaign has no team)."""
    rows = []
    for agent in campaign.finished_agents:
        for condition in campaign.conditions:
            records = _team_records(campaign, agent, condition)
            if not records:
                continue

            def rate(key: str, records=records) -> dict[str, Any]:
                outcomes = np.array([bool(r[key]) for r in records])
                return metrics.rate(outcomes, confidence).to_json()

            rows.append(
                {
                    "agent": agent,
                    "condition": condition,
                    "robots": int(records[0]["robots"]),
                    "episodes": len(records),
                    "team_success": rate("team_success"),
                    "robot_collision": rate("robot_collision"),
                    "scene_collision": rate("scene_collision"),
                    "mean_arrived": float(np.mean([r["arrived"] for r in records])),
                    "mean_duration": float(np.mean([r["duration"] for r in records])),
                }
            )
    return rows


def team_maps(campaign: Campaign, scene, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per team agent: one episode's map, ``{"agent", "condition", "seed", "caption", "png"}``."""
    maps = []
    for agent in dict.fromkeys(row["agent"] for row in rows):
        condition = next(row["condition"] for row in rows if row["agent"] == agent)
        records = _team_records(campaign, agent, condition)
        shown = max(records, key=lambda r: (r["team_success"], r["arrived"]))  # first best
        trajectory = campaign.trajectory(agent, condition, shown["seed"])
        caption = (
            f"{agent}, {condition}, seed {shown['seed']}: {shown['arrived']}/{shown['robots']} "
            f"arrived{', two robots touched' if shown['robot_collision'] else ''}"
            f"{', a robot hit the scene' if shown['scene_collision'] else ''}"
        )
        png = team_map(scene.drivable, trajectory, caption)
        maps.append({"agent": agent, "condition": condition, "seed": shown["seed"], "png": png})
        maps[-1]["caption"] = caption
    return maps


def team_map(drivable, trajectory: dict[str, np.ndarray], title: str) -> str:
    """Every robot's path of one episode over the top-down drivable map (base64 PNG)."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.0, 4.8))
    axes.imshow(
        drivable.grid, origin="lower", extent=drivable.extent, cmap="Greys_r", vmin=-0.6, vmax=1.3
    )
    x, y, goals = trajectory["x"], trajectory["y"], trajectory["goals"]
    for robot in range(x.shape[1]):
        colour = ROBOT_COLOURS[robot % len(ROBOT_COLOURS)]
        alive = np.isfinite(x[:, robot])
        axes.plot(x[alive, robot], y[alive, robot], color=colour, lw=1.6, label=f"robot {robot}")
        axes.plot(x[0, robot], y[0, robot], "o", color=colour, ms=5)
        axes.plot(*goals[robot], "*", color=colour, ms=13, markeredgecolor="black")
    low, high = drivable.drivable_bounds()
    margin = 0.1 * float(np.max(high - low))
    axes.set_xlim(low[0] - margin, high[0] + margin)
    axes.set_ylim(low[1] - margin, high[1] + margin)
    axes.set_title(title, fontsize=9)
    axes.set_aspect("equal")
    axes.set_xlabel("x (m)")
    axes.set_ylabel("y (m)")
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    return plots.to_base64(figure)


def _team_records(campaign: Campaign, agent: str, condition: str) -> list[dict[str, Any]]:
    return [
        r
        for r in campaign.records
        if r["agent"] == agent and r["condition"] == condition and "robots" in r
    ]
