"""The drivable map: lookups, clearance, the planner and task sampling."""

from __future__ import annotations

import numpy as np
import pytest

from scene_builder.drivable import DrivableMap, NoPathError, sample_tasks


def wall_map() -> DrivableMap:
    """A 1.2 m x 1.0 m free area at 2 cm, with a wall across x = 0.6 m except near the top."""
    grid = np.ones((50, 60), bool)
    grid[:40, 30] = False
    return DrivableMap(grid, origin_xy=[-0.1, 0.2], resolution=0.02)


def test_lookup_uses_origin_and_resolution_and_outside_is_not_drivable():
    drivable = wall_map()
    points = np.array([[-0.09, 0.21], [0.51, 0.3], [-0.11, 0.3], [0.3, 1.21], [1.09, 1.19]])
    # (0.51 - -0.1) / 0.02 = 30.5 -> wall column; the others: inside, left of grid, above grid, corner
    assert drivable.is_drivable(points).tolist() == [True, False, False, False, True]
    assert drivable.is_drivable(np.zeros((2, 3, 2))).shape == (2, 3)


def test_single_point_lookup_agrees_with_the_array_lookup_inside_outside_and_on_edges():
    drivable = wall_map()
    rng = np.random.default_rng(0)
    points = rng.uniform([-0.3, 0.0], [1.3, 1.4], size=(2000, 2))
    # exact cell boundaries, where floor and truncation toward zero differ on the negative side
    edges = np.array([[-0.1, 0.2], [-0.12, 0.2], [0.5, 0.2], [0.52, 0.2], [1.1, 1.2], [-0.1, 0.19]])
    points = np.concatenate([points, edges])
    singles = [drivable.drivable_at(x, y) for x, y in points]
    assert singles == drivable.is_drivable(points).tolist()
    assert 0 < sum(singles) < len(singles)


def test_shortest_path_goes_around_the_wall_and_keeps_clearance():
    drivable = wall_map()
    start, goal = np.array([0.0, 0.3]), np.array([1.0, 0.3])
    path = drivable.shortest_path(start, goal, clearance=0.05)
    assert np.allclose(path[0], start) and np.allclose(path[-1], goal)
    dense = np.concatenate(
        [np.linspace(a, b, 20) for a, b in zip(path[:-1], path[1:], strict=True)]
    )
    assert drivable.is_drivable(dense).all()
    # the wall's top end is at y = 0.2 + 40 * 0.02 = 1.0 m: the path must pass above it with room
    assert dense[:, 1].max() > 1.0 + 0.05
    length = np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
    assert length < 2.0  # up 0.75, across, down: about 1.7 m, not a detour


def test_no_path_and_undrivable_endpoints_raise():
    grid = np.ones((20, 20), bool)
    grid[:, 10] = False
    drivable = DrivableMap(grid, [0, 0], 0.1)
    with pytest.raises(NoPathError, match="no drivable path"):
        drivable.shortest_path([0.2, 0.2], [1.8, 0.2])
    with pytest.raises(NoPathError, match="start .* not on drivable ground"):
        drivable.shortest_path([1.05, 0.2], [1.8, 0.2])
    with pytest.raises(NoPathError, match="goal"):
        drivable.shortest_path([0.2, 0.2], [5.0, 0.2])


def test_diagonal_steps_do_not_cut_between_touching_obstacles():
    grid = np.ones((3, 3), bool)
    grid[0, 1] = grid[1, 0] = False  # obstacles touching at a corner; (0,0) is sealed off
    drivable = DrivableMap(grid, [0, 0], 1.0)
    with pytest.raises(NoPathError):
        drivable.shortest_path([0.5, 0.5], [1.5, 1.5])


def test_sample_tasks_are_seeded_reachable_and_far_enough():
    drivable = wall_map()
    spawns, goals, routes = sample_tasks(drivable, 5, seed=3, clearance=0.04, min_distance=0.5)
    again = sample_tasks(drivable, 5, seed=3, clearance=0.04, min_distance=0.5)
    assert spawns == again[0] and goals == again[1]
    assert sample_tasks(drivable, 5, seed=4, clearance=0.04, min_distance=0.5)[0] != spawns
    room = drivable.free_with_clearance(0.04)
    for spawn, goal, route in zip(spawns, goals, routes, strict=True):
        assert np.hypot(goal.x - spawn.x, goal.y - spawn.y) >= 0.5
        rows, cols = drivable.to_cells(np.array([[spawn.x, spawn.y], [goal.x, goal.y]]))
        assert room[rows, cols].all()
        heading = route[1] - route[0]
        assert np.isclose(np.arctan2(heading[1], heading[0]), spawn.yaw)
    with pytest.raises(NoPathError, match="clearance"):
        sample_tasks(drivable, 2, clearance=5.0)
