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

Lane keeping (route task): after every step the vehicle centre's distance to the nearest point of
the route is its lateral deviation (before the route's start or past its end, the distance to
that end point); ``lane_metrics`` gives their mean and maximum over the
episode's steps (the spawn itself, offset on purpose, is not counted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.polyline import Polyline

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
        self._line = Polyline(self.route)
        self.route_length = self._line.length
        self._initial_distance = 1.0
        self._progress = 0.0  # metres along the route (route) or distance gained (goal)
        self._best_arc = 0.0  # furthest arc length reached (route)
        self._deviations: list[float] = []

    def reset(self, xy: np.ndarray) -> None:
        distance = self.distance_to_goal(xy)
        self._initial_distance = max(distance, 1e-6)
        self._progress = self._line.project(xy).arc if self.kind == "route" else 0.0
        self._best_arc = self._progress
        self._deviations = []

    def distance_to_goal(self, xy: np.ndarray) -> float:
        return math.hypot(xy[0] - self.goal_xy[0], xy[1] - self.goal_xy[1])

    def lateral_deviation(self, xy: np.ndarray) -> float:
        """Metres from ``xy`` to the nearest point of the route."""
        return self._line.project(xy).distance

    def lane_metrics(self) -> dict[str, float]:
        """Mean and maximum lateral deviation over the steps so far (0 before the first)."""
        deviations = self._deviations or [0.0]
        return {
            "mean_lateral_deviation": float(np.mean(deviations)),
            "max_lateral_deviation": float(np.max(deviations)),
        }

    def completion(self, xy: np.ndarray) -> float:
        """Fraction of the task done: route arc reached (route) or distance closed (goal)."""
        if self.kind == "route":
            return min(1.0, self._best_arc / max(self.route_length, 1e-6))
        return min(1.0, max(0.0, 1.0 - self.distance_to_goal(xy) / self._initial_distance))

    def target_point(self, xy: np.ndarray, lookahead: float) -> np.ndarray:
        """Where to head now: the goal (goal task) or the route point ``lookahead`` m ahead."""
        if self.kind == "goal":
            return self.goal_xy
        return self._line.at(min(self._best_arc + lookahead, self.route_length))[0]

    def step(self, xy: np.ndarray, collision: bool, off_road: bool) -> StepOutcome:
        """Score the vehicle's new position; see the module docstring for the reward."""
        distance = self.distance_to_goal(xy)
        if self.kind == "route":
            nearest = self._line.project(xy)
            self._deviations.append(nearest.distance)
            arc = nearest.arc
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
