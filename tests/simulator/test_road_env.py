"""Road scenes: a metric car that fits the road, route spawns, lane metrics, goals on the road."""

from __future__ import annotations

import math

import numpy as np
import pybullet
import pytest
from gymnasium.utils.env_checker import check_env

from common.polyline import Polyline
from simulator import make_env
from simulator.routes import footprint_points, spawn_offsets
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


def _angle(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


@pytest.mark.parametrize("spawn", ["scene", "random"])
def test_route_spawns_are_offset_within_range_and_stand_on_the_road(road_scene, spawn):
    env = make_env(scene=road_scene, task="route", spawn=spawn)
    lateral_range, heading_range = spawn_offsets(env.config, env.scene.extras)
    assert (lateral_range, math.degrees(heading_range)) == pytest.approx(
        (1.0, 15.0)
    )  # road defaults
    recorded = Polyline(np.asarray(env.scene.extras["recorded_route"]))
    laterals, turns = [], []
    try:
        for seed in range(40):
            _, info = env.reset(seed=seed)
            x, y, yaw = info["pose"]
            start, tangent = Polyline(env.task.route).at(0.0)
            assert recorded.project(start).distance < 1e-3  # the route is on the recorded one
            laterals.append(np.linalg.norm([x, y] - start))
            turns.append(_angle(yaw - math.atan2(tangent[1], tangent[0])))
            footprint = footprint_points(x, y, yaw, env.vehicle_spec)
            assert env.scene.drivable.is_drivable(footprint).all()
    finally:
        env.close()
    assert max(laterals) <= 1.0 + 1e-9 and max(np.abs(turns)) <= heading_range + 1e-9
    # offsets are drawn across the range, not stuck at zero
    assert max(laterals) > 0.5 and max(np.abs(turns)) > 0.5 * heading_range


def test_arena_route_spawns_keep_the_scene_spawn(synthetic_scene):
    env = make_env(scene=synthetic_scene, task="route")
    try:
        _, info = env.reset(options={"task_index": 2})
        s = env.scene.spawns[2]
        assert info["pose"] == pytest.approx([s.x, s.y, s.yaw])
    finally:
        env.close()


def test_lane_metrics_of_a_straight_drive_across_a_tilted_route(road_scene):
    """Full throttle from rest along +x, the route rising 1 in 10: by the bicycle model the car
    has covered a dt^2 n (n + 1) / 2 after n sub-steps, so the deviation after step k is that
    distance (n = 2k) times sin(atan(0.1))."""
    steps = 10
    env = make_env(scene=road_scene, task="route", max_episode_steps=steps)
    try:
        env.reset(
            options={
                "spawn": [1.0, -1.25, 0.0],
                "goal": [21.0, 0.75],
                "route": [[1.0, -1.25], [21.0, 0.75]],
            }
        )
        for _ in range(steps):
            *_, terminated, truncated, info = env.step([0.0, 1.0])
        assert truncated and not terminated
        a, dt, repeat = env.vehicle_spec.max_accel, env.config.physics_dt, env.config.action_repeat
        travelled = [a * dt**2 * n * (n + 1) / 2 for n in repeat * np.arange(1, steps + 1)]
        deviations = np.array(travelled) * math.sin(math.atan(0.1))
        assert info["mean_lateral_deviation"] == pytest.approx(deviations.mean(), rel=1e-6)
        assert info["max_lateral_deviation"] == pytest.approx(deviations[-1], rel=1e-6)
        assert info["lateral_deviation"] == pytest.approx(deviations[-1], rel=1e-6)
    finally:
        env.close()


def test_goal_tasks_on_a_road_put_the_goal_on_the_road_ahead(road_scene):
    env = make_env(scene=road_scene, task="goal", spawn="random")
    recorded = Polyline(np.asarray(env.scene.extras["recorded_route"]))
    try:
        for seed in range(10):
            _, info = env.reset(seed=seed)
            spawn, goal = recorded.project(info["pose"][:2]), recorded.project(env.task.goal_xy)
            assert spawn.distance < 1e-3 and goal.distance < 1e-3
            assert goal.arc - spawn.arc > 10.0  # ahead, along the road
    finally:
        env.close()


def test_check_env_on_a_road_scene(road_scene):
    env = make_env(scene=road_scene, task="route", obs="rgb+state", image_size=16)
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_negative_route_offsets_are_refused():
    from simulator import EnvConfig
    from simulator.errors import ConfigError

    with pytest.raises(ConfigError, match="route_lateral_offset=-1.0: must be a number >= 0"):
        EnvConfig(route_lateral_offset=-1.0)
    with pytest.raises(ConfigError, match="route_heading_offset_deg"):
        EnvConfig(route_heading_offset_deg=float("nan"))


@pytest.fixture(scope="module")
def sloped_road(tmp_path_factory):
    """The synthetic street climbing 5 % along its length (its first straight runs along +x)."""
    from scene_builder.synthetic import SyntheticRoadConfig, make_synthetic_road

    config = SyntheticRoadConfig(grade=0.05)
    return make_synthetic_road(tmp_path_factory.mktemp("sloped") / "road", config=config)


def test_the_car_and_its_camera_follow_a_sloping_road(sloped_road):
    """On the first straight the ground is at 0.05 x: the car drives up it without touching it,
    and the camera stays at the capture height above the ground under the car."""
    env = make_env(scene=sloped_road, task="route", max_episode_steps=30)
    try:
        start, goal = [10.0, -1.25, 0.0], [30.0, -1.25]
        env.reset(options={"spawn": start, "goal": goal, "route": [start[:2], goal]})
        assert env.camera_pose()[2, 3] == pytest.approx(0.05 * 10.0 + 1.5, abs=1e-3)
        for _ in range(20):
            *_, terminated, _, info = env.step([0.0, 1.0])
            assert not terminated and not info["collision"]
            x = info["pose"][0]
            assert env.camera_pose()[2, 3] == pytest.approx(0.05 * x + 1.5, abs=1e-3)
        assert x > 15.0  # 6 m up the slope
    finally:
        env.close()
