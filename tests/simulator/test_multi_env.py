"""Several robots in one scene: PettingZoo conformance, contacts, crossing tasks, batched cameras."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from simulator import EnvConfig, make_multi
from simulator.errors import ActionError, ConfigError
from simulator.multi_env import DISCRETE_ACTIONS, GLOBAL_FIELDS, NEIGHBOUR_FIELDS
from simulator.multi_tasks import routes_meet
from simulator.sensors import STATE_FIELDS

BIRD = Path(__file__).resolve().parents[2] / "assets" / "scenes" / "bird"


@pytest.mark.parametrize("actions", ["discrete", "continuous"])
def test_parallel_api_test_passes_on_the_synthetic_scene(synthetic_scene, actions):
    config = EnvConfig(scene=synthetic_scene, agents=2, obs="state+scan", max_episode_steps=40)
    env = make_multi(config, actions=actions)
    try:
        parallel_api_test(env, num_cycles=60)
        observations, _ = env.reset(seed=3)
        width = len(STATE_FIELDS) + len(NEIGHBOUR_FIELDS)
        assert {o["state"].shape for o in observations.values()} == {(width,)}
        assert env.state().shape == (2 * len(GLOBAL_FIELDS),)
    finally:
        env.close()


def _open_spot(env, room: float) -> np.ndarray:
    """The drivable point with the most clearance; it must have ``room`` metres around it."""
    drivable = env.scene.drivable
    clearance = drivable.clearance()
    row, col = np.unravel_index(np.argmax(clearance), clearance.shape)
    assert clearance[row, col] > room, "the scene has no open spot big enough for the test"
    return drivable.cell_centres(row, col)


def _head_on(env, gap_lengths: float):
    """Reset with robot 0 and robot 1 facing each other ``gap_lengths`` lengths apart."""
    length = env.spec.length
    centre = _open_spot(env, (0.5 * gap_lengths + 1.0) * length)
    half = 0.5 * gap_lengths * length
    spawns = [[centre[0] - half, centre[1], 0.0], [centre[0] + half, centre[1], math.pi]]
    goals = [[centre[0] + half, centre[1]], [centre[0] - half, centre[1]]]
    return env.reset(seed=0, options={"spawns": spawns, "goals": goals})


def test_two_robots_driven_into_each_other_collide_and_end_the_episode(synthetic_scene):
    env = make_multi(EnvConfig(scene=synthetic_scene, agents=2, vehicle="diffdrive"))
    full_ahead = DISCRETE_ACTIONS.index((0.0, 1.0))
    try:
        _head_on(env, gap_lengths=2.5)
        infos = {}
        for _ in range(40):
            _, rewards, terminations, _, infos = env.step({a: full_ahead for a in env.agents})
            if not env.agents:
                break
        assert not env.agents, "two robots driving head-on never met"
        assert all(info["robot_collision"] for info in infos.values())
        assert all(terminations.values()) and all(r < -5.0 for r in rewards.values())
        stats = env.episode_stats
        assert stats["robot_collisions"] == 2 and not stats["team_success"]
        assert stats["scene_collisions"] == 0
    finally:
        env.close()


def test_robots_that_stop_do_not_collide_and_scan_sees_the_other(synthetic_scene):
    config = EnvConfig(scene=synthetic_scene, agents=2, vehicle="diffdrive", obs="state+scan")
    env = make_multi(config)
    try:
        observations, _ = _head_on(env, gap_lengths=2.5)
        gap = 2.5 * env.spec.length
        for robot in ("robot_0", "robot_1"):  # each sees the other: ray 0 looks straight ahead
            scan = observations[robot]["scan"] * env.scan_range
            assert scan[0] < gap and scan[0] > gap - 2.0 * env.spec.length, robot
        neighbour = observations["robot_0"]["state"][len(STATE_FIELDS) :]
        assert neighbour[0] == 1.0 and neighbour[1] == pytest.approx(gap / env.arena_size, 1e-3)
        for _ in range(5):
            env.step({a: 0 for a in env.agents})  # action 0: stop
        assert env.agents == env.possible_agents
        assert env.episode_stats["robot_collisions"] == 0
    finally:
        env.close()


@pytest.mark.parametrize("count", [2, 3])
def test_sampled_tasks_on_the_bird_arena_cross(count):
    env = make_multi(EnvConfig(scene=BIRD, agents=count), render_mode="rgb_array")
    try:
        env.reset(seed=0)
        routes = [task.route for task in env.tasks]
        assert routes_meet(routes, 2.0 * env.spec.bounding_radius)
        spawns = np.array([task.route[0] for task in env.tasks])
        gaps = np.linalg.norm(spawns[:, None] - spawns[None], axis=2) + np.eye(count) * 1e9
        assert gaps.min() >= 2.5 * env.spec.bounding_radius
        assert all(env.scene.drivable.is_drivable(route).all() for route in routes)
        frame = env.render()
        assert frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 0
    finally:
        env.close()


def test_all_cameras_are_rendered_in_one_batched_call(synthetic_scene):
    config = EnvConfig(scene=synthetic_scene, agents=3, obs="rgb+state", image_size=16)
    env = make_multi(config)
    calls = []
    render = env.renderer.render
    env.renderer.render = lambda poses, lightings: (
        calls.append(len(poses)) or render(poses, lightings)
    )
    try:
        observations, _ = env.reset(seed=1)
        env.step({a: 4 for a in env.agents})
        assert calls == [3, 3]
        images = [observations[a]["rgb"] for a in env.possible_agents]
        assert images[0].shape == (16, 16, 3) and not np.array_equal(images[0], images[1])
    finally:
        env.close()


def test_bad_actions_and_options_are_one_line_errors(synthetic_scene):
    env = make_multi(EnvConfig(scene=synthetic_scene, agents=2))
    try:
        env.reset(seed=0)
        with pytest.raises(ActionError, match="integer in"):
            env.step({"robot_0": 12, "robot_1": 0})
        with pytest.raises(ActionError, match="no action for robot_1"):
            env.step({"robot_0": 0})
        with pytest.raises(ConfigError, match="spawns must be"):
            env.reset(options={"spawns": [[0, 0, 0]], "goals": [[1, 1]]})
    finally:
        env.close()
    with pytest.raises(ConfigError, match="agents=0"):
        EnvConfig(scene=synthetic_scene, agents=0)


@pytest.mark.parametrize("vehicle", ["car", "diffdrive"])
def test_every_robot_has_the_single_env_vehicle_size_on_a_road(road_scene, vehicle):
    """One rule sizes a vehicle: a metric car on a road scene, in one env or with several."""
    import pybullet

    from simulator import make_env

    single = make_env(scene=road_scene, vehicle=vehicle)
    env = make_multi(EnvConfig(scene=road_scene, agents=3, vehicle=vehicle))
    try:
        assert env.spec == single.unwrapped.vehicle_spec
        assert env.camera.mount_height == pytest.approx(single.unwrapped.camera.mount_height)
        world = env._world
        for i, body in enumerate(world.bodies):
            world.place(i, 10.0 * i, 0.0, 0.0)
            low, high = pybullet.getAABB(body, physicsClientId=world.world.client)
            size = np.array(high) - np.array(low)
            spec = env.spec
            expected = [spec.length, spec.width, spec.height - spec.ground_clearance]
            assert size == pytest.approx(expected, abs=0.02), i
    finally:
        env.close()
        single.close()


@pytest.fixture(scope="module")
def sloped_street(tmp_path_factory):
    """The synthetic street climbing 5 % along its length (its first straight runs along +x)."""
    from scene_builder.synthetic import SyntheticRoadConfig, make_synthetic_road

    config = SyntheticRoadConfig(grade=0.05)
    return make_synthetic_road(tmp_path_factory.mktemp("sloped") / "road", config=config)


def test_robots_and_their_cameras_follow_a_sloping_road(sloped_street):
    """On the first straight the ground is at 0.05 x: each robot's body, camera and scan ride
    on the ground under it, as the single env's vehicle does, and none touches the road."""
    env = make_multi(EnvConfig(scene=sloped_street, agents=2, obs="rgb+scan", image_size=16))
    try:
        spawns = [[10.0, -1.25, 0.0], [20.0, 1.25, 0.0]]
        env.reset(options={"spawns": spawns, "goals": [[40.0, -1.25], [45.0, 1.25]]})
        straight = {agent: 6 for agent in env.agents}  # no steering, full speed
        for _ in range(15):
            _, _, terminations, _, infos = env.step(straight)
            assert not any(terminations.values()), infos
        for i in range(2):
            x = env.vehicles[i].x
            assert env._world.base_z[i] == pytest.approx(0.05 * x, abs=1e-3)
            mount = env.camera.mount_height
            assert env._camera_pose(i)[2, 3] == pytest.approx(0.05 * x + mount, abs=1e-3)
        assert env.vehicles[0].x > 12.0  # they drove up the slope
    finally:
        env.close()
