"""Vehicle kinematics and task scoring against closed-form answers (no scene needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.lighting import choose_lighting
from simulator.tasks import FAILURE_PENALTY, SUCCESS_REWARD, TIME_PENALTY, Task
from simulator.vehicles import VehicleState, step_vehicle, vehicle_spec


def test_car_at_full_lock_drives_a_circle_of_the_bicycle_radius():
    spec = vehicle_spec("car", 0.1)
    state = VehicleState(speed=0.5 * spec.max_speed, steer=spec.max_steer)
    radius = spec.wheelbase / math.tan(spec.max_steer)
    centre = np.array([0.0, radius])  # turning left from the origin, heading +x
    for _ in range(200):
        step_vehicle(spec, state, np.array([1.0, 0.0]), 0.05)
        assert abs(np.linalg.norm(state.xy - centre) - radius) < 1e-9
    assert state.speed == pytest.approx(0.5 * spec.max_speed)


def test_car_limits_steering_rate_and_speed():
    spec = vehicle_spec("car", 0.2)
    state = VehicleState()
    step_vehicle(spec, state, np.array([1.0, 1.0]), 0.05)
    assert state.steer == pytest.approx(spec.max_steer_rate * 0.05)
    assert state.speed == pytest.approx(spec.max_accel * 0.05)
    for _ in range(200):
        step_vehicle(spec, state, np.array([1.0, 5.0]), 0.05)  # out-of-range action is clipped
    assert state.speed == pytest.approx(spec.max_speed)
    assert state.steer == pytest.approx(spec.max_steer)
    for _ in range(400):
        step_vehicle(spec, state, np.array([0.0, -1.0]), 0.05)
    assert state.speed == pytest.approx(-spec.max_reverse_speed)


def test_diffdrive_wheels():
    spec = vehicle_spec("diffdrive", 0.1)
    state = VehicleState(yaw=0.3)
    step_vehicle(spec, state, np.array([1.0, 1.0]), 0.1)
    assert state.xy == pytest.approx(
        0.1 * spec.max_speed * np.array([math.cos(0.3), math.sin(0.3)])
    )
    start = state.xy.copy()
    step_vehicle(spec, state, np.array([-1.0, 1.0]), 0.1)  # spin in place, to the left
    assert state.xy == pytest.approx(start)
    assert state.yaw == pytest.approx(0.3 + 0.1 * 2 * spec.max_speed / spec.wheelbase)


def test_sizes_scale_with_the_vehicle_length():
    small, large = vehicle_spec("car", 0.1), vehicle_spec("car", 2.0)
    assert large.width / small.width == pytest.approx(20.0)
    assert large.max_speed / small.max_speed == pytest.approx(20.0)
    assert large.max_yaw_rate == pytest.approx(small.max_yaw_rate)  # same turning behaviour


def test_goal_progress_rewards_sum_to_ten_and_success_adds_ten():
    task = Task("goal", goal_xy=(1.0, 0.0), goal_radius=0.05, route=[(0.0, 0.0), (1.0, 0.0)])
    task.reset(np.array([0.0, 0.0]))
    total, steps = 0.0, 0
    for x in np.linspace(0.1, 1.0, 10):
        outcome = task.step(np.array([x, 0.0]), collision=False, off_road=False)
        total += outcome.reward
        steps += 1
    assert outcome.success and outcome.terminated
    assert total == pytest.approx(10.0 + SUCCESS_REWARD + steps * TIME_PENALTY)
    assert outcome.route_completion == pytest.approx(1.0)


def test_route_progress_is_arc_length_and_going_back_costs():
    route = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    task = Task("route", goal_xy=(1.0, 1.0), goal_radius=0.05, route=route)
    task.reset(np.array([0.0, 0.0]))
    forward = task.step(np.array([1.0, 0.5]), False, False)  # 1.5 m of 2 m
    assert forward.reward == pytest.approx(10 * 0.75 + TIME_PENALTY)
    assert forward.route_completion == pytest.approx(0.75)
    back = task.step(np.array([0.5, 0.0]), False, False)
    assert back.reward == pytest.approx(-10 * 0.5 + TIME_PENALTY)
    assert back.route_completion == pytest.approx(0.75)  # completion keeps the furthest point
    # success needs both the goal disc and 90 % of the route: a loop that ends where it starts
    loop = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.1]])
    task = Task("route", goal_xy=(0.0, 0.1), goal_radius=0.15, route=loop)
    task.reset(np.array([0.0, 0.0]))
    assert not task.step(np.array([0.0, 0.0]), False, False).success  # in the disc, not driven
    for point in ([1.0, 0.5], [0.5, 1.0], [0.0, 0.5], [0.0, 0.12]):
        outcome = task.step(np.array(point), False, False)
    assert outcome.success and outcome.terminated


def test_crash_ends_the_episode_with_the_penalty():
    task = Task("goal", goal_xy=(1.0, 0.0), goal_radius=0.05, route=[(0.0, 0.0), (1.0, 0.0)])
    task.reset(np.array([0.0, 0.0]))
    outcome = task.step(np.array([0.0, 0.0]), collision=True, off_road=False)
    assert outcome.terminated and not outcome.success
    assert outcome.reward == pytest.approx(FAILURE_PENALTY + TIME_PENALTY)


def test_random_lighting_blends_two_presets():
    from scene_builder.bundle import DEFAULT_LIGHTING
    from scene_builder.lighting import SceneLighting

    lighting = choose_lighting("random", DEFAULT_LIGHTING, np.random.default_rng(0))
    (a, wa), (b, wb) = lighting.blend
    assert a != b and wa + wb == pytest.approx(1.0)
    scene = SceneLighting(dict(DEFAULT_LIGHTING))
    expected = wa * DEFAULT_LIGHTING[a].gain + wb * DEFAULT_LIGHTING[b].gain
    assert scene.photometric(lighting.blend).gain == pytest.approx(expected)
