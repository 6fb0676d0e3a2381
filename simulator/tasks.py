"""Tasks: reach a goal region (``goal``) or follow a route to its end (``route``).

Reward per step (the same shaping for both tasks, all terms documented here):

- progress: ``+10 * (progress gained this step) / (progress needed in total)``, where progress is
  the drop in straight-line distance to the goal (``goal``) or the gain in arc length along the
  route, the vehicle's position projected onto the route (``route``). Driving the whole way
  earns +10, so returns are comparable across spawns and scene sizes; moving away costs reward.
- success: +10 once, when the vehicle's centre is inside the goal disc (``route``: the route's
  end, after at least 90 % of its length).
- collision or leaving the drivable area: -10 once (the episode ends).
- time: -0.01 per step, so that dawdling is never free.

Episodes terminate on success, collision or leaving the drivable area; they are truncated at
``max_episode_steps`` by the environment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PROGRESS_REWARD = 10.0
SUCCESS_REWARD = 10.0
FAILURE_PENALTY = -10.0
TIME_PENALTY = -0.01
ROUTE_SUCCESS_FRACTION = 0.9


@dataclass
class StepOutcome:
    reward: float
    terminated: bool
    success: bool
    route_completion: float
    distance_to_goal: float


class Task:
    """One episode's task: a goal disc and the route that reaches it from the spawn."""

    def __init__(self, kind: str, goal_xy: np.ndarray, goal_radius: float, route: np.ndarray):
        self.kind = kind
        self.goal_xy = np.asarray(goal_xy, dtype=np.float64).reshape(2)
        self.goal_radius = float(goal_radius)
        self.route = np.asarray(route, dtype=np.float64).reshape(-1, 2)
        if len(self.route) < 2:
            self.route = np.stack([self.route[0], self.goal_xy])
        segments = np.diff(self.route, axis=0)
        self._segment_lengths = np.linalg.norm(segments, axis=1)
        self._arc_start = np.concatenate([[0.0], np.cumsum(self._segment_lengths)])[:-1]
        self.route_length = float(self._segment_lengths.sum())
        self._initial_distance = 1.0
        self._progress = 0.0  # metres along the route (route) or distance gained (goal)
        self._best_arc = 0.0  # furthest arc length reached (route)

    def reset(self, xy: np.ndarray) -> None:
        distance = self.distance_to_goal(xy)
        self._initial_distance = max(distance, 1e-6)
        self._progress = self._route_arc(xy) if self.kind == "route" else 0.0
        self._best_arc = self._progress

    def distance_to_goal(self, xy: np.ndarray) -> float:
        return math.hypot(xy[0] - self.goal_xy[0], xy[1] - self.goal_xy[1])

    def _route_arc(self, xy: np.ndarray) -> float:
        """Arc length of the point of the route nearest to ``xy``."""
        starts = self.route[:-1]
        segments = np.diff(self.route, axis=0)
        lengths_sq = np.maximum(self._segment_lengths**2, 1e-12)
        t = np.clip(((xy - starts) * segments).sum(axis=1) / lengths_sq, 0.0, 1.0)
        nearest = starts + t[:, None] * segments
        best = int(np.argmin(((nearest - xy) ** 2).sum(axis=1)))
        return float(self._arc_start[best] + t[best] * self._segment_lengths[best])

    def completion(self, xy: np.ndarray) -> float:
        """Fraction of the task done: route arc reached (route) or distance closed (goal)."""
        if self.kind == "route":
            return min(1.0, self._best_arc / max(self.route_length, 1e-6))
        return min(1.0, max(0.0, 1.0 - self.distance_to_goal(xy) / self._initial_distance))

    def target_point(self, xy: np.ndarray, lookahead: float) -> np.ndarray:
        """Where to head now: the goal (goal task) or the route point ``lookahead`` m ahead."""
        if self.kind == "goal":
            return self.goal_xy
        arc = min(self._best_arc + lookahead, self.route_length)
        index = int(np.searchsorted(self._arc_start, arc, side="right") - 1)
        index = min(max(index, 0), len(self._segment_lengths) - 1)
        t = (arc - self._arc_start[index]) / max(self._segment_lengths[index], 1e-12)
        return self.route[index] + min(t, 1.0) * (self.route[index + 1] - self.route[index])

    def step(self, xy: np.ndarray, collision: bool, off_road: bool) -> StepOutcome:
        """Score the vehicle's new position; see the module docstring for the reward."""
        distance = self.distance_to_goal(xy)
        if self.kind == "route":
            arc = self._route_arc(xy)
            gained = arc - self._progress
            self._progress = arc
            self._best_arc = max(self._best_arc, arc)
            reward = PROGRESS_REWARD * gained / max(self.route_length, 1e-6)
            reached = (
                distance <= self.goal_radius
                and self._best_arc >= ROUTE_SUCCESS_FRACTION * self.route_length
            )
        else:
            gained = (self._initial_distance - distance) - self._progress
            self._progress += gained
            reward = PROGRESS_REWARD * gained / self._initial_distance
            reached = distance <= self.goal_radius
        success = reached and not collision and not off_road
        reward += TIME_PENALTY
        if success:
            reward += SUCCESS_REWARD
        if collision or off_road:
            reward += FAILURE_PENALTY
        return StepOutcome(
            reward=float(reward),
            terminated=bool(success or collision or off_road),
            success=bool(success),
            route_completion=self.completion(xy),
            distance_to_goal=float(distance),
        )
