"""The state carries what a lane keeper steers by: offset from the route, heading error, turn.

Geometry on hand-made routes, then a lane keeper that reads nothing but those state entries
drives the shipped street (the real lund_street capture) from offset spawns.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator import EnvConfig, make_env
from simulator.sensors import STATE_FIELDS
from simulator.tasks import ROUTE_TURN_LENGTHS, Task
from tests.conftest import REPO

STREET = REPO / "assets" / "scenes" / "street"
LENGTH = 4.5  # the car's length, metres


def _task(route) -> Task:
    route = np.asarray(route, dtype=np.float64)
    return Task("route", route[-1], 1.0, route)


def _arc(radius: float, sign: float, n: int = 200) -> np.ndarray:
    """A quarter circle from the origin heading +x, turning left (sign +1) or right (-1)."""
    angles = np.linspace(0.0, 0.5 * math.pi, n)
    return np.stack([radius * np.sin(angles), sign * radius * (1.0 - np.cos(angles))], axis=1)


def test_offset_and_heading_error_on_a_straight_route():
    task = _task([[0.0, 0.0], [50.0, 0.0]])
    frame = task.route_frame(np.array([10.0, 0.9]), 0.2, LENGTH)
    assert (frame.offset, frame.heading_error, frame.turn_ahead) == pytest.approx((0.9, 0.2, 0.0))
    frame = task.route_frame(np.array([10.0, -1.3]), -3.0, LENGTH)  # right of it, facing back
    assert frame.offset == pytest.approx(-1.3)
    assert frame.heading_error == pytest.approx(-3.0)


def test_turn_ahead_has_the_bend_s_sign_and_size():
    radius = 30.0
    ahead = ROUTE_TURN_LENGTHS * LENGTH
    left, right = _task(_arc(radius, 1.0)), _task(_arc(radius, -1.0))
    start = np.array([0.0, 0.0])
    # the chords over the two halves of the look-ahead differ by the angle of half of it
    expected = 0.5 * ahead / radius
    assert left.route_frame(start, 0.0, LENGTH).turn_ahead == pytest.approx(expected, rel=0.02)
    assert right.route_frame(start, 0.0, LENGTH).turn_ahead == pytest.approx(-expected, rel=0.02)
    # heading error against the bend's direction where the car stands, a quarter of the way
    point = _arc(radius, 1.0)[50]
    tangent_yaw = 0.5 * math.pi * 50 / 199
    frame = left.route_frame(point, tangent_yaw + 0.1, LENGTH)
    assert frame.heading_error == pytest.approx(0.1, abs=0.01)
    assert abs(frame.offset) < 0.05


def _field(state: np.ndarray, name: str) -> float:
    return float(state[STATE_FIELDS.index(name)])


@pytest.fixture(scope="module")
def street_env():
    if not (STREET / "scene.json").is_file():
        pytest.skip("assets/scenes/street is not in this checkout")
    env = make_env(
        EnvConfig(
            scene=str(STREET),
            obs="state",
            renderer="none",
            task="route",
            spawn="random",
            max_episode_steps=150,
        )
    )
    yield env
    env.close()


def test_state_route_entries_match_the_street_geometry(street_env):
    env = street_env
    width = env.vehicle_spec.width
    offsets = []
    for seed in range(20):
        observation, info = env.reset(seed=seed)
        state = observation["state"]
        offset = _field(state, "route_offset") * width
        # the signed offset's size is the lateral deviation the lane metrics report
        assert abs(offset) == pytest.approx(info["lateral_deviation"], abs=0.02)
        heading = math.atan2(_field(state, "route_heading_sin"), _field(state, "route_heading_cos"))
        assert abs(heading) <= math.radians(15.0) + 0.05  # the spawn's heading offset range
        offsets.append(offset)
    assert min(offsets) < -0.3 and max(offsets) > 0.3  # spawns on both sides, both signs


def test_a_lane_keeper_reading_only_the_state_drives_the_street(street_env):
    """Steer by the state's route entries alone (no privileged access): offset and heading
    error. With either one zeroed this controller leaves the 2-5 m wide road of lund_street in
    most episodes."""
    env = street_env
    finals = []
    for seed in range(100, 110):
        observation, _ = env.reset(seed=seed)
        done = False
        while not done:
            state = observation["state"]
            steer = -0.8 * _field(state, "route_offset") - 2.0 * _field(state, "route_heading_sin")
            throttle = 0.6 - _field(state, "speed")
            observation, _, terminated, truncated, info = env.step(
                np.clip([steer, throttle], -1.0, 1.0)
            )
            done = terminated or truncated
        finals.append(info)
    assert sum(i["success"] for i in finals) >= 9, [i["route_completion"] for i in finals]
    assert not any(i["off_road"] for i in finals)
