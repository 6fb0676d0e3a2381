"""Scoring a team: team success, robot-robot collisions, steps, return.

``evaluate_team`` runs greedy episodes of a multi-agent learner in a ``simulator.make_multi``
environment and summarises ``MultiDriveEnv.episode_stats``: the team succeeds when every robot
arrives; an episode counts as a robot collision when any two robots touched.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.marl.agent import team_env_of


def evaluate_team(agent, env, episodes: int, seed: int) -> dict[str, Any]:
    """Rates over ``episodes`` greedy episodes of ``env``, seeded ``seed``, ``seed + 1``, ..."""
    team = team_env_of(env)
    rows = []
    for episode in range(episodes):
        result = agent.run_episode(team, epsilon=0.0, seed=seed + episode)
        stats = result["info"]
        rows.append(
            (
                bool(stats.get("team_success", False)),
                stats.get("robot_collisions", 0) > 0,
                stats.get("scene_collisions", 0) > 0,
                result["steps"],
                result["return"],
            )
        )
    success, robot, scene, steps, returns = (np.array(column) for column in zip(*rows, strict=True))
    return {
        "success_rate": float(success.mean()),  # the team's: every robot arrived
        "team_success_rate": float(success.mean()),
        "robot_collision_rate": float(robot.mean()),
        "scene_collision_rate": float(scene.mean()),
        "mean_steps": float(steps.mean()),
        "mean_return": float(returns.mean()),
    }
