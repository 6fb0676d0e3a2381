"""One simulated episode of a campaign: roll it to its end, keep its record and trajectory.

The record holds the outcome flags the report compares with real trials (success, collision,
off road), the route completion, the duration in seconds (steps x the control period) and the
path length; the trajectory is the x, y, yaw of every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Policy = Callable[[Any], np.ndarray]
LANE_METRICS = ("mean_lateral_deviation", "max_lateral_deviation")  # route tasks only


def control_period(env) -> float:
    """Seconds per environment step, from the env's config (1.0 if it has none: then steps)."""
    config = getattr(env.unwrapped, "config", None)
    return float(getattr(config, "control_dt", None) or getattr(env.unwrapped, "dt", 1.0))


def run_episode(env, policy: Policy, seed: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Roll one episode to its end; return its record (without agent/condition) and trajectory."""
    obs, info = env.reset(seed=seed)
    poses = [np.asarray(info.get("pose", (np.nan, np.nan, np.nan)), dtype=float)]
    total_reward, steps, done = 0.0, 0, False
    while not done:
        action = policy(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        total_reward += float(reward)
        steps += 1
        poses.append(np.asarray(info.get("pose", (np.nan, np.nan, np.nan)), dtype=float))
        done = terminated or truncated
    trajectory = np.stack(poses)
    step_lengths = np.linalg.norm(np.diff(trajectory[:, :2], axis=0), axis=1)
    record = {
        "seed": int(seed),
        "success": bool(info.get("success", False)),
        "collision": bool(info.get("collision", False)),
        "off_road": bool(info.get("off_road", False)),
        "route_completion": float(
            info.get("route_completion", float(bool(info.get("success", False))))
        ),
        **{key: float(info[key]) for key in LANE_METRICS if key in info},
        "duration": steps * control_period(env),
        "path_length": float(np.nansum(step_lengths)),
        "steps": steps,
        "return": total_reward,
    }
    return record, {"x": trajectory[:, 0], "y": trajectory[:, 1], "yaw": trajectory[:, 2]}
