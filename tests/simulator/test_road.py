"""Road scenes: a metric car that fits the road, its camera at the capture's height."""

from __future__ import annotations

import numpy as np
import pybullet
import pytest

from simulator import make_env
from simulator.vehicles import scene_vehicle_spec, vehicle_spec


def _body_extent(env) -> np.ndarray:
    """Length, width and top of the vehicle's collision body in PyBullet, placed at yaw 0."""
    world = env.unwrapped._world
    world.place_vehicle(0.0, 0.0, 0.0)
    low, high = pybullet.getAABB(world.vehicle_body, physicsClientId=world.client)
    return np.array([high[0] - low[0], high[1] - low[1], high[2]])


def test_road_scene_gets_a_metric_car_with_the_capture_camera_height(road_scene):
    env = make_env(scene=road_scene)
    try:
        spec = env.vehicle_spec
        assert (spec.length, spec.width, spec.height) == (4.5, 1.8, 1.5)
        assert spec.wheelbase == pytest.approx(2.7)
        assert 10.0 <= spec.max_speed <= 15.0  # m/s, whatever the scene's arena size
        assert env.camera.mount_height == pytest.approx(env.scene.extras["camera_height"])
        # the collision body has the car's own proportions, not the table-top URDF's 2:1
        assert _body_extent(env) == pytest.approx([4.5, 1.8, 1.5], abs=0.02)
    finally:
        env.close()


def test_road_dimensions_come_from_the_bundle_extras():
    extras = {"scene_kind": "road", "vehicle_length": 5.0, "vehicle_width": 2.0}
    spec = scene_vehicle_spec("car", extras, arena_size=300.0)
    assert (spec.length, spec.width) == (5.0, 2.0)
    assert spec.wheelbase == pytest.approx(3.0)  # keeps the car's 0.6 share of its length
    assert scene_vehicle_spec("car", extras, 300.0, length=3.0).length == 3.0
    robot = scene_vehicle_spec("diffdrive", extras, 300.0)
    assert robot.length < 1.0  # a delivery robot, not a car-sized one


def test_table_top_rule_is_unchanged(synthetic_scene):
    """Arena scenes: proportions from the length (extras or arena / 10), camera at 0.6 x length."""
    assert scene_vehicle_spec("car", {}, arena_size=2.0) == vehicle_spec("car", 0.2)
    assert scene_vehicle_spec("car", {"vehicle_length": 0.1}, 1.5) == vehicle_spec("car", 0.1)
    env = make_env(scene=synthetic_scene)
    try:
        assert env.vehicle_spec == vehicle_spec("car", 0.1)
        assert env.camera.mount_height == pytest.approx(0.06)
        # the box built from the spec is the URDF chassis: 1 x 0.5, 0.08 to 0.35 lengths
        assert _body_extent(env) == pytest.approx([0.1, 0.05, 0.035], abs=0.002)
    finally:
        env.close()
