"""Privileged scripted drivers: a shortest path on the drivable map, followed by pure pursuit.

The expert reads ``env.unwrapped.privileged_state()`` (pose, velocity, goal, route, drivable map,
vehicle spec), which learning agents never see. On a route task it tracks the route itself (lane
keeping: from an offset spawn it steers back onto the route rather than cutting across the road).
On a goal task, at the start of each episode it plans the shortest
path from the vehicle to the goal on the drivable grid, keeping the vehicle's bounding radius of
clearance from the edges (half of it, then the task's own route if the map is too tight), and then
tracks that path with pure pursuit (Coulter 1992): aim at the path point one look-ahead distance
ahead and steer along the circular arc through it. The car turns that arc's curvature into a
steering angle with its wheelbase and regulates speed with its accelerator (slower in tight turns
and near the goal; the look-ahead grows with speed, ``lookahead_seconds`` ahead at least, as in
speed-scheduled pure pursuit for road cars); the differential-drive robot turns it into left/right wheel speeds. Pure
pursuit is a few lines of geometry, so no control library is needed.

``make_expert(env)`` returns an ``Expert`` with SB3's ``predict(obs, deterministic=True)`` shape;
it ignores the observation, which is what lets it record demonstrations for any sensor set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agents.errors import AgentError

SEARCH_SEGMENTS = 4  # path segments ahead searched for the vehicle's projection each step


@dataclass(frozen=True)
class ExpertConfig:
    """Pure-pursuit gains, in vehicle lengths and fractions of the vehicle's limits."""

    lookahead_lengths: float = 1.2  # look-ahead distance, in vehicle lengths
    cruise_fraction: float = 0.7  # cruise speed as a fraction of max speed
    turn_slowdown: float = 0.6  # speed factor lost at the sharpest turn
    goal_slowdown_lengths: float = 2.0  # start slowing this many lengths before the goal
    min_speed_fraction: float = 0.25  # never slower than this near the goal
    lookahead_seconds: float = 0.8  # at speed, look at least this far ahead in time


class Expert:
    """Scripted driver of one environment (see the module docstring)."""

    def __init__(self, env, config: ExpertConfig | None = None) -> None:
        self.env = env
        self.config = config or ExpertConfig()
        self._path: np.ndarray | None = None
        self._goal_key: tuple[float, ...] | None = None
        self._last_xy: np.ndarray | None = None
        self._progress = 0  # index of the path segment the vehicle is on

    # ------------------------------------------------------------------ planning
    def _plan(self, state: dict) -> np.ndarray:
        if state["task"] == "route" and len(state["route"]) >= 2:
            return np.asarray(state["route"], dtype=np.float64)  # lane keeping: the route itself
        start, goal = state["pose"][:2], state["goal"][:2]
        radius = state["vehicle"].bounding_radius
        for clearance in (radius, 0.5 * radius, 0.0):
            try:
                return np.asarray(state["drivable"].shortest_path(start, goal, clearance))
            except Exception:  # NoPathError: try with less clearance
                continue
        route = np.asarray(state["route"], dtype=np.float64)
        if len(route) >= 2:
            return np.vstack([start, route[1:]])
        raise AgentError(f"expert: no drivable path from {start.tolist()} to {goal.tolist()}")

    def _update_plan(self, state: dict) -> None:
        xy = state["pose"][:2]
        key = tuple(np.round(state["goal"], 9))
        jumped = self._last_xy is None or np.linalg.norm(xy - self._last_xy) > (
            2.0 * state["vehicle"].max_speed * state["control_dt"] + 1e-9
        )
        if self._path is None or key != self._goal_key or jumped:
            self._path = self._plan(state)
            self._goal_key = key
            self._progress = _nearest_segment(self._path, xy)
        self._last_xy = xy.copy()

    def _lookahead_point(self, xy: np.ndarray, lookahead: float) -> np.ndarray:
        """The path point ``lookahead`` metres past the vehicle's projection on the path."""
        path = self._path
        best, best_distance, best_t = self._progress, math.inf, 0.0
        for i in range(self._progress, min(self._progress + SEARCH_SEGMENTS, len(path) - 1)):
            segment = path[i + 1] - path[i]
            t = float(np.clip(np.dot(xy - path[i], segment) / max(segment @ segment, 1e-12), 0, 1))
            distance = float(np.linalg.norm(path[i] + t * segment - xy))
            if distance < best_distance - 1e-12:
                best, best_distance, best_t = i, distance, t
        self._progress = best
        remaining = lookahead
        point, i, t = path[best], best, best_t
        while i < len(path) - 1:
            segment = path[i + 1] - path[i]
            length = float(np.linalg.norm(segment))
            left = (1.0 - t) * length
            if left >= remaining:
                return path[i] + (t + remaining / max(length, 1e-12)) * segment
            remaining -= left
            i, t = i + 1, 0.0
            point = path[i]
        return point

    # ------------------------------------------------------------------ control
    def action(self) -> np.ndarray:
        """The expert's action for the environment's current state, in [-1, 1]^2."""
        state = self.env.unwrapped.privileged_state()
        self._update_plan(state)
        spec, cfg = state["vehicle"], self.config
        x, y, yaw = state["pose"]
        xy = np.array([x, y])
        goal_distance = float(np.linalg.norm(state["goal"][:2] - xy))
        speed_now = abs(float(state["velocity"][0]))
        lookahead = max(
            cfg.lookahead_lengths * spec.length, cfg.lookahead_seconds * speed_now, 1e-6
        )
        target = self._lookahead_point(xy, min(lookahead, goal_distance + 0.5 * lookahead))
        dx, dy = target - xy
        local_x = math.cos(yaw) * dx + math.sin(yaw) * dy
        local_y = -math.sin(yaw) * dx + math.cos(yaw) * dy
        distance = max(math.hypot(local_x, local_y), 1e-6)
        curvature = 2.0 * local_y / distance**2  # pure pursuit arc through the target
        alpha = abs(math.atan2(local_y, local_x))
        speed = (
            spec.max_speed * cfg.cruise_fraction * (1.0 - cfg.turn_slowdown * min(alpha, 1.5) / 1.5)
        )
        near = goal_distance / (cfg.goal_slowdown_lengths * spec.length)
        speed *= max(cfg.min_speed_fraction, min(1.0, near))
        if spec.kind == "car":
            if local_x < 0:  # target behind: full lock towards it, creep
                steer = math.copysign(1.0, local_y)
                speed = cfg.min_speed_fraction * spec.max_speed
            else:
                steer = math.atan(spec.wheelbase * curvature) / spec.max_steer
            current = float(state["velocity"][0])
            accel = (speed - current) / max(spec.max_accel * state["control_dt"], 1e-9)
            return np.clip(np.array([steer, accel], dtype=np.float32), -1.0, 1.0)
        if local_x < 0:  # turn in place towards a target behind
            turn = math.copysign(1.0, local_y)
            return np.array([-turn, turn], dtype=np.float32)
        yaw_rate = speed * curvature
        half_track = 0.5 * spec.wheelbase
        left, right = speed - yaw_rate * half_track, speed + yaw_rate * half_track
        scale = max(1.0, abs(left) / spec.max_speed, abs(right) / spec.max_speed)
        wheels = np.array([left, right]) / (spec.max_speed * scale)
        return np.clip(wheels, -1.0, 1.0).astype(np.float32)

    def reset(self) -> None:
        """Forget the plan (call after ``env.reset`` if the goal might not change)."""
        self._path = None
        self._last_xy = None

    def predict(self, observation=None, state=None, episode_start=None, deterministic=True):
        """SB3-shaped: ``(action, None)``; the observation is not used."""
        return self.action(), None


def _nearest_segment(path: np.ndarray, xy: np.ndarray) -> int:
    """Index of the path segment nearest to ``xy`` (where tracking starts)."""
    if len(path) < 2:
        return 0
    starts, segments = path[:-1], np.diff(path, axis=0)
    lengths_sq = np.maximum((segments**2).sum(axis=1), 1e-12)
    t = np.clip(((xy - starts) * segments).sum(axis=1) / lengths_sq, 0.0, 1.0)
    return int(np.argmin(((starts + t[:, None] * segments - xy) ** 2).sum(axis=1)))


def make_expert(env, config: ExpertConfig | None = None) -> Expert:
    """The scripted expert for ``env`` (a DriveEnv, possibly wrapped), any vehicle and task."""
    if not hasattr(env.unwrapped, "privileged_state"):
        raise AgentError(f"expert: {type(env.unwrapped).__name__} has no privileged_state()")
    return Expert(env, config)
