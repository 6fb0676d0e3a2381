"""Cooperative tasks for several robots: spawns and goals whose shortest paths meet.

A multi-robot task is only a coordination problem when the robots' paths interact. The sampler
draws each robot's spawn and goal on drivable cells with room for the vehicle (goal at least
``min_distance`` from its spawn; spawns, and goals, at least ``spacing`` apart),
routes them along the drivable map's shortest paths, and keeps a draw only when every robot's
route comes within ``meet_distance`` of another robot's route: the paths cross or share a
passage, so the robots must take turns, swerve or pass each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scene_builder.drivable import DrivableMap, NoPathError, sample_free_points

ATTEMPTS = 2000


@dataclass(frozen=True)
class RobotTask:
    """One robot's spawn (x, y, yaw), goal (x, y) and route (K, 2)."""

    spawn: np.ndarray
    goal: np.ndarray
    route: np.ndarray


def crossing_tasks(
    drivable: DrivableMap,
    count: int,
    rng: np.random.Generator,
    clearance: float,
    min_distance: float,
    spacing: float,
    meet_distance: float,
) -> list[RobotTask]:
    """``count`` robot tasks whose routes meet (see the module docstring).

    Raises ``NoPathError`` when no such arrangement is found in ``ATTEMPTS`` draws.
    """
    free = drivable.free_with_clearance(clearance)
    for _ in range(ATTEMPTS):
        points = sample_free_points(drivable, 2 * count, rng, clearance)
        starts, goals = points[:count], points[count:]
        if np.any(np.linalg.norm(goals - starts, axis=1) < min_distance):
            continue
        if _closest_pair(starts) < spacing or _closest_pair(goals) < spacing:
            continue
        tasks = _tasks_if_reachable(drivable, free, starts, goals, clearance)
        if tasks is not None and routes_meet([t.route for t in tasks], meet_distance):
            return tasks
    raise NoPathError(
        f"found no {count} spawn/goal pairs whose routes meet with clearance {clearance:.3f} m"
    )


def _closest_pair(points: np.ndarray) -> float:
    if len(points) < 2:
        return np.inf
    gaps = np.linalg.norm(points[:, None] - points[None], axis=2)
    np.fill_diagonal(gaps, np.inf)
    return float(gaps.min())


def _tasks_if_reachable(drivable, free, starts, goals, clearance) -> list[RobotTask] | None:
    points = np.concatenate([starts, goals])
    rows, cols = drivable.to_cells(points)
    h, w = free.shape
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    if not inside.all() or not free[rows, cols].all():
        return None
    tasks = []
    for start, goal in zip(starts, goals, strict=True):
        try:
            route = drivable.shortest_path(start, goal, clearance=clearance)
        except NoPathError:
            return None
        heading = route[1] - route[0]
        yaw = math.atan2(heading[1], heading[0])
        tasks.append(RobotTask(np.array([*start, yaw]), goal.copy(), route))
    return tasks


def routes_meet(routes: list[np.ndarray], distance: float) -> bool:
    """Whether every route passes within ``distance`` of some other route (one route: True)."""
    if len(routes) < 2:
        return True
    dense = [_densify(route, 0.25 * distance) for route in routes]
    for i, points in enumerate(dense):
        gaps = [
            np.min(np.linalg.norm(points[:, None] - other[None], axis=2))
            for j, other in enumerate(dense)
            if j != i
        ]
        if min(gaps) > distance:
            return False
    return True


def _densify(route: np.ndarray, spacing: float) -> np.ndarray:
    points = [route[:1]]
    for start, end in zip(route[:-1], route[1:], strict=True):
        pieces = max(1, math.ceil(np.linalg.norm(end - start) / spacing))
        t = np.arange(1, pieces + 1)[:, None] / pieces
        points.append(start + t * (end - start))
    return np.concatenate(points)
