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

Route frame (``Task.route_frame``, part of the ``state`` observation): where the vehicle stands
relative to its route, what a lane keeper steers by: the signed sideways offset from the route
(left positive), the heading error against the route's direction at the nearest point, and the
route's turn over the road ahead. Directions are chords over a few metres, not single segment
tangents, so that a recorded route's jitter does not show as heading noise.

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
ROUTE_TURN_LENGTHS = 4.0  # the route frame's turn ahead, over this many vehicle lengths


@dataclass(frozen=True)
class RouteFrame:
    """The vehicle relative to its route (see the module docstring)."""

    offset: float  # metres, signed: positive left of the route's direction
    heading_error: float  # radians in (-pi, pi]: the vehicle's yaw minus the route's direction
    turn_ahead: float  # radians: the route's change of direction over the look-ahead


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

    def route_frame(self, xy: np.ndarray, yaw: float, vehicle_length: float) -> RouteFrame:
        """Offset and heading error at the nearest route point, and the turn ahead of it.

        The route's direction is the chord over one vehicle length centred on the nearest
        point; the turn is the angle between the chords over the first and the second half of
        the ``ROUTE_TURN_LENGTHS`` vehicle lengths that follow the nearest point.
        """
        chord, ahead = vehicle_length, ROUTE_TURN_LENGTHS * vehicle_length
        xy = np.asarray(xy, dtype=np.float64).reshape(2)
        line = self._line
        arc = line.project(xy).arc
        marks = arc + np.array([0.0, -0.5 * chord, 0.5 * chord, 0.5 * ahead, ahead])
        points, tangents = line.points_at(marks)
        point = points[0]
        direction = _chord(points[1], points[2], tangents[1])
        away = xy - point
        offset = direction[0] * away[1] - direction[1] * away[0]
        heading_error = _wrap(yaw - math.atan2(direction[1], direction[0]))
        first = _chord(points[0], points[3], tangents[0])
        second = _chord(points[3], points[4], tangents[3])
        turn = math.atan2(second[1], second[0]) - math.atan2(first[1], first[0])
        return RouteFrame(float(offset), heading_error, _wrap(turn))

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


def _chord(a: np.ndarray, b: np.ndarray, tangent: np.ndarray) -> np.ndarray:
    """Unit direction from route point ``a`` to route point ``b``.

    Where clamping to an end of the route leaves no length, the tangent at ``a``.
    """
    length = math.hypot(b[0] - a[0], b[1] - a[1])
    return tangent if length < 1e-6 else (b - a) / length


def _wrap(angle: float) -> float:
    """``angle`` in radians wrapped to (-pi, pi]."""
    return float(math.pi - (math.pi - angle) % (2.0 * math.pi))
