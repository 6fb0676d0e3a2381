"""A built-in privileged controller: head for the goal (or along the route) and stop inside it.

It reads ``env.unwrapped.privileged_state()`` and steers toward a look-ahead point on the route
(the straight line spawn -> goal in the goal task's explicit-spawn case), slowing down as the
goal gets close. It is the reference driver of the tests ("a straight-line controller reaches a
goal in free space") and of ``driveenv rollout --policy expert`` when ``agents.experts`` is not
installed; it does not plan around obstacles (that is ``agents.experts``' job).
"""

from __future__ import annotations

import math

import numpy as np

LOOKAHEAD_LENGTHS = 1.5  # look-ahead distance, in vehicle lengths


class StraightLineController:
    """``predict(obs) -> (action, None)`` for one ``DriveEnv`` (SB3-like shape)."""

    def __init__(self, env) -> None:
        self.env = env.unwrapped

    def __call__(self, obs=None) -> np.ndarray:
        return self.predict(obs)[0]

    def predict(self, obs=None, deterministic: bool = True):
        state = self.env.privileged_state()
        spec = state["vehicle"]
        x, y, yaw = state["pose"]
        target = _lookahead(state["route"], np.array([x, y]), LOOKAHEAD_LENGTHS * spec.length)
        goal = state["goal"]
        heading = math.atan2(target[1] - y, target[0] - x)
        error = (heading - yaw + math.pi) % (2.0 * math.pi) - math.pi
        distance = math.hypot(goal[0] - x, goal[1] - y)
        speed_now = state["velocity"][0]
        # Slow down in the last few lengths and when facing away from the target.
        wanted = (
            spec.max_speed * min(1.0, distance / (3.0 * spec.length)) * max(0.2, math.cos(error))
        )
        if spec.kind == "car":
            steer = float(np.clip(2.0 * error / spec.max_steer, -1.0, 1.0))
            accel = float(
                np.clip((wanted - speed_now) / (spec.max_accel * state["control_dt"]), -1, 1)
            )
            return np.array([steer, accel], dtype=np.float32), None
        turn = float(np.clip(1.5 * error, -1.0, 1.0))
        forward = wanted / spec.max_speed
        left, right = forward - 0.5 * turn, forward + 0.5 * turn
        scale = max(1.0, abs(left), abs(right))
        return np.array([left / scale, right / scale], dtype=np.float32), None


def _lookahead(route: np.ndarray, xy: np.ndarray, distance: float) -> np.ndarray:
    """The first route point at least ``distance`` beyond the route point nearest to ``xy``."""
    route = _densify(np.asarray(route, dtype=np.float64), 0.25 * distance)
    nearest = int(np.argmin(np.linalg.norm(route - xy, axis=1)))
    for point in route[nearest:]:
        if np.linalg.norm(point - xy) >= distance:
            return point
    return route[-1]


def _densify(route: np.ndarray, spacing: float) -> np.ndarray:
    """The polyline resampled so consecutive points are at most ``spacing`` apart."""
    points = [route[0]]
    for start, end in zip(route[:-1], route[1:], strict=True):
        pieces = max(1, int(math.ceil(np.linalg.norm(end - start) / spacing)))
        points.extend(start + (end - start) * (k / pieces) for k in range(1, pieces + 1))
    return np.array(points)
