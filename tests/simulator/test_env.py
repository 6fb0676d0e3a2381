"""The single environment: gymnasium conformance, determinism, collisions, cliffs, success."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy import ndimage

from simulator import EnvConfig, make_env
from simulator.controllers import StraightLineController
from simulator.errors import ActionError, ConfigError
from simulator.sensors import STATE_FIELDS
from simulator.world import OPEN_CLIENTS

SENSORS = ["state", "rgb", "rgb+state", "rgb+depth+state", "state+scan"]


@pytest.mark.parametrize("task", ["goal", "route"])
@pytest.mark.parametrize("obs", SENSORS)
def test_check_env_passes_for_every_sensor_and_task(synthetic_scene, obs, task):
    env = make_env(EnvConfig(scene=synthetic_scene, obs=obs, task=task, image_size=16))
    try:
        check_env(env, skip_render_check=True)
        observation, _ = env.reset(seed=1)
        assert set(observation) == set(obs.split("+"))
    finally:
        env.close()


def test_gymnasium_make_by_id_and_in_a_fresh_process(synthetic_scene):
    env = gymnasium.make("driveenv/Drive-v0", scene=str(synthetic_scene), vehicle="diffdrive")
    try:
        observation, info = env.reset(seed=0)
        assert observation["state"].shape == (len(STATE_FIELDS),)
        assert env.unwrapped.vehicle_spec.kind == "diffdrive"
    finally:
        env.close()
    code = (
        "import gymnasium; "
        f"env = gymnasium.make('simulator:driveenv/Drive-v0', scene={str(synthetic_scene)!r}); "
        "obs, _ = env.reset(seed=0); env.step(env.action_space.sample()); print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_factories_take_a_loaded_bundle_without_reading_it_again(scene, monkeypatch):
    """make_env, make_vec and gymnasium.make accept the SceneBundle itself: nothing re-hashed."""
    import scene_builder.bundle
    from simulator import make_vec

    hashed = []
    monkeypatch.setattr(scene_builder.bundle, "sha256_of", lambda path: hashed.append(path))
    monkeypatch.setattr(scene_builder.bundle.cv2, "imread", lambda *a: hashed.append(a))
    envs = [
        make_env(scene=scene, obs="state", renderer="mesh", vehicle="diffdrive"),
        make_env(EnvConfig(scene="elsewhere", vehicle="diffdrive"), scene=scene),
        gymnasium.make("driveenv/Drive-v0", scene=scene, vehicle="diffdrive").unwrapped,
    ]
    vec = make_vec(EnvConfig(scene=scene.root, vehicle="diffdrive"), 2, scene=scene)
    try:
        for env in [*envs, *vec.envs]:
            assert env.scene is scene and env.config.scene == scene.root
            assert env.vehicle_spec.kind == "diffdrive"
        first = [env.reset(seed=3)[0]["state"] for env in envs]
        assert all(np.array_equal(first[0], state) for state in first[1:])
        assert hashed == []
    finally:
        vec.close()
        for env in envs:
            env.close()


def _rollout(env, seed, steps=25):
    rng = np.random.default_rng(123)
    observations = [env.reset(seed=seed)[0]]
    for _ in range(steps):
        observation, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 2))
        observations.append(observation)
        if terminated or truncated:
            observations.append(env.reset()[0])
    return observations


def test_same_seed_gives_same_observations(synthetic_scene):
    config = EnvConfig(
        scene=synthetic_scene,
        obs="rgb+depth+state",
        lighting="random",
        photometric_augmentation=True,
        spawn="random",
        image_size=16,
    )
    first, second = make_env(config), make_env(config)
    try:
        a, b = _rollout(first, seed=7), _rollout(second, seed=7)
        c = _rollout(second, seed=8)
    finally:
        first.close()
        second.close()
    for x, y in zip(a, b, strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert not np.array_equal(a[0]["state"], c[0]["state"])  # another seed, another episode


def test_close_releases_every_pybullet_client(synthetic_scene):
    import pybullet

    before = set(OPEN_CLIENTS)
    envs = [make_env(EnvConfig(scene=synthetic_scene)) for _ in range(3)]
    clients = OPEN_CLIENTS - before
    assert len(clients) == 3
    for env in envs:
        env.reset(seed=0)
        env.step(np.zeros(2))
        env.close()
        env.close()  # idempotent
    assert before == OPEN_CLIENTS
    assert not any(pybullet.isConnected(physicsClientId=client) for client in clients)


# the shipped bird scene; DRIVEENV_BIRD_SCENE points the tests at another build of it
BIRD_SCENE = Path(
    os.environ.get(
        "DRIVEENV_BIRD_SCENE", Path(__file__).resolve().parents[2] / "assets" / "scenes" / "bird"
    )
)


@pytest.fixture(params=["synthetic", "bird"])
def any_scene(request, synthetic_scene):
    """The synthetic scene, and the shipped bird scene once it is built."""
    if request.param == "synthetic":
        return synthetic_scene
    if not (BIRD_SCENE / "scene.json").is_file():
        pytest.skip(f"the shipped bird scene is not built yet ({BIRD_SCENE})")
    return BIRD_SCENE


def _obstacles(drivable) -> list[np.ndarray]:
    """Cells (rows, cols) of each undrivable island inside the drivable area, largest first."""
    labels, count = ndimage.label(~drivable.grid)
    edges = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    outside = set(np.unique(edges).tolist())
    islands = [np.nonzero(labels == k) for k in range(1, count + 1) if k not in outside]
    return sorted(islands, key=lambda cells: -len(cells[0]))


def _straight_approach(target, distance, directions=32):
    """Candidate starts ``distance`` m from ``target`` all around it, facing it."""
    for angle in np.linspace(0, 2 * np.pi, directions, endpoint=False):
        away = np.array([np.cos(angle), np.sin(angle)])
        start = target + distance * away
        yield start, float(np.arctan2(-away[1], -away[0])), away


def _drive_straight(env, spawn, goal, steps=300):
    env.reset(seed=0, options={"spawn": spawn, "goal": goal})
    full_ahead = {"car": [0.0, 1.0], "diffdrive": [1.0, 1.0]}[env.unwrapped.vehicle_spec.kind]
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(np.array(full_ahead))
        if terminated or truncated:
            return info, terminated
    return info, False


# A valid value other than the default for every EnvConfig field, on the bird scene (which has a
# radiance field, so renderer="field" works). A new field must be added here.
BIRD_OPTIONS = {
    "scene": BIRD_SCENE,
    "vehicle": "diffdrive",
    "obs": "rgb+state",
    "renderer": "field",
    "task": "route",
    "lighting": "dim",
    "photometric_augmentation": True,
    "image_size": 12,
    "camera_fov_deg": 70.0,
    "camera_pitch_deg": 5.0,
    "camera_height": 0.05,
    "field_mode": "free",
    "max_depth": 2.0,
    "vehicle_length": 0.06,
    "scan_rays": 8,
    "scan_range": 0.3,
    "spawn": "random",
    "route_lateral_offset": 0.02,
    "route_heading_offset_deg": 10.0,
    "goal_radius": 0.05,
    "physics_dt": 0.04,
    "action_repeat": 3,
    "max_episode_steps": 50,
    "seed": 7,
}


@pytest.mark.parametrize("factory", ["gymnasium.make", "make_env"])
def test_every_config_field_is_a_keyword_and_check_env_renders(factory):
    """Each EnvConfig field given as a keyword reaches the env's config, and gymnasium's
    check_env passes with its render check (which rebuilds the env from its spec's keywords)."""
    from dataclasses import fields

    if not (BIRD_SCENE / "scene.json").is_file():
        pytest.skip(f"the shipped bird scene is not built yet ({BIRD_SCENE})")
    # agents is make_multi's field: the single-vehicle env refuses anything but 1 (tested below)
    assert {f.name for f in fields(EnvConfig)} - {"agents"} == set(BIRD_OPTIONS)
    default = EnvConfig()
    assert all(getattr(default, k) != v for k, v in BIRD_OPTIONS.items())
    if factory == "make_env":
        env = make_env(render_mode="rgb_array", **BIRD_OPTIONS)
    else:
        env = gymnasium.make("driveenv/Drive-v0", render_mode="rgb_array", **BIRD_OPTIONS)
    try:
        expected = EnvConfig(**BIRD_OPTIONS)
        if factory == "gymnasium.make":  # it keeps max_episode_steps for its TimeLimit wrapper
            expected.max_episode_steps = EnvConfig().max_episode_steps
            assert env.spec.max_episode_steps == BIRD_OPTIONS["max_episode_steps"]
        assert env.unwrapped.config == expected
        assert env.unwrapped.vehicle_spec.kind == "diffdrive"
        assert type(env.unwrapped.renderer).__name__ == "FieldRenderer"
        assert env.observation_space["rgb"].shape == (12, 12, 3)
        check_env(env.unwrapped, skip_render_check=factory == "make_env")  # no spec to rebuild
    finally:
        env.close()


def test_single_vehicle_env_refuses_several_agents():
    with pytest.raises(ConfigError, match="make_multi"):
        make_env(scene=str(BIRD_SCENE), agents=2)


@pytest.mark.parametrize("renderer", ["mesh", "field"])
def test_check_env_with_its_render_check_for_both_renderers(renderer):
    if not (BIRD_SCENE / "scene.json").is_file():
        pytest.skip(f"the shipped bird scene is not built yet ({BIRD_SCENE})")
    env = gymnasium.make(
        "driveenv/Drive-v0", scene=str(BIRD_SCENE), obs="state", renderer=renderer, image_size=12
    )
    try:
        check_env(env.unwrapped)  # builds the env again per render mode, from env.spec
        rebuilt = gymnasium.make(env.spec, render_mode="rgb_array")
        assert rebuilt.unwrapped.config.renderer == renderer
        rebuilt.reset(seed=0)
        assert rebuilt.render().dtype == np.uint8
        rebuilt.close()
    finally:
        env.close()


def test_driving_into_an_obstacle_is_a_collision(any_scene):
    """Synthetic: into a box; bird: into the bird (the largest obstacle on the table)."""
    env = make_env(EnvConfig(scene=any_scene))
    try:
        drivable = env.unwrapped.scene.drivable
        length = env.unwrapped.vehicle_spec.length
        rows, cols = _obstacles(drivable)[0]
        footprint = drivable.cell_centres(rows, cols)
        centre = footprint.mean(axis=0)
        reach = np.max(np.linalg.norm(footprint - centre, axis=1))  # obstacle radius
        distance = reach + 1.2 * length  # the car's nose starts 0.7 lengths from the obstacle
        for start, yaw, away in _straight_approach(centre, distance):
            lane = centre + np.linspace(reach, distance + 0.5 * length, 30)[:, None] * away
            side = np.array([-away[1], away[0]]) * 0.5 * length
            if not all(drivable.is_drivable(lane + k * side).all() for k in (-1, 0, 1)):
                continue
            info, terminated = _drive_straight(env, (*start, yaw), start + 5 * (centre - start))
            assert terminated and info["collision"] and not info["off_road"]
            assert not info["success"]
            travelled = np.linalg.norm(info["pose"][:2] - start)
            assert 0.2 * length < travelled < distance - reach  # it stopped at the obstacle
            return
        pytest.fail("no obstacle could be approached in a straight line")
    finally:
        env.close()


def test_driving_off_the_table_edge_is_off_road(any_scene):
    env = make_env(EnvConfig(scene=any_scene, vehicle="diffdrive"))
    try:
        drivable = env.unwrapped.scene.drivable
        length = env.unwrapped.vehicle_spec.length
        low, high = drivable.drivable_bounds()
        middle = 0.5 * (low + high)
        for angle in np.linspace(0, 2 * np.pi, 32, endpoint=False):
            away = np.array([np.cos(angle), np.sin(angle)])
            ray = middle + np.arange(0, 2 * env.unwrapped.arena_size, 0.1 * length)[:, None] * away
            on = drivable.is_drivable(ray)
            first = int(np.argmax(on))  # past the obstacle in the middle, if any
            if not on[first] or on[first:].all():
                continue
            edge = first + int(np.argmin(on[first:]))  # first step off the map after that
            if on[edge:].any() or edge - first < 14:  # an island or a hole, not the outer edge
                continue
            start = ray[edge - 8]  # 0.8 lengths from the edge, heading out
            side = np.array([-away[1], away[0]]) * 0.6 * length
            lane = ray[edge - 14 : edge]  # from 0.6 lengths behind the start: the body is clear
            if not all(drivable.is_drivable(lane + k * side).all() for k in (-1, 0, 1)):
                continue
            info, terminated = _drive_straight(env, (*start, angle), middle)
            assert terminated and info["off_road"] and not info["collision"]
            assert np.linalg.norm(info["pose"][:2] - ray[edge]) < length  # at the edge
            return
        pytest.fail("no straight way off the table was found")
    finally:
        env.close()


def _free_line(scene, clearance=0.08):
    """A 0.9 m horizontal line across the plate with ``clearance`` m of free ground around it."""
    free = scene.drivable.free_with_clearance(clearance)
    xs = np.linspace(-0.45, 0.45, 90)
    for y in np.linspace(-0.35, 0.35, 71):
        rows, cols = scene.drivable.to_cells(np.stack([xs, np.full_like(xs, y)], axis=1))
        if free[rows, cols].all():
            return (-0.45, y), (0.45, y)
    pytest.fail("the synthetic scene has no free straight line")


@pytest.mark.parametrize("task", ["goal", "route"])
def test_straight_line_controller_reaches_goal_in_free_space(synthetic_scene, scene, task):
    env = make_env(EnvConfig(scene=synthetic_scene, task=task))
    controller = StraightLineController(env)
    try:
        start, goal = _free_line(scene)
        spawn = (*start, 0.4)  # not quite facing the goal: the controller must steer
        observation, info = env.reset(seed=0, options={"spawn": spawn, "goal": goal})
        total = 0.0
        for _ in range(300):
            observation, reward, terminated, truncated, info = env.step(controller(observation))
            total += reward
            if terminated or truncated:
                break
        assert info["success"] and terminated
        assert info["route_completion"] > 0.9
        assert info["distance_to_goal"] <= env.unwrapped.task.goal_radius
        assert total > 15.0  # +10 progress, +10 success, minus the time penalty
    finally:
        env.close()


def test_bad_actions_raise_before_touching_the_physics(synthetic_scene):
    env = make_env(EnvConfig(scene=synthetic_scene))
    try:
        env.reset(seed=0)
        env.step(np.array([0.2, 1.0]))
        pose = env.unwrapped.privileged_state()["pose"].copy()
        for bad in ([np.nan, 0.0], [0.0, np.inf], [1.0, 2.0, 3.0], "fast"):
            with pytest.raises(ActionError):
                env.step(bad)
        np.testing.assert_array_equal(env.unwrapped.privileged_state()["pose"], pose)
        env.step(np.array([0.0, 0.0]))  # still usable
    finally:
        env.close()


def test_config_errors_are_clear(synthetic_scene):
    with pytest.raises(ConfigError, match="vehicle='truck'"):
        EnvConfig(scene=synthetic_scene, vehicle="truck")
    with pytest.raises(ConfigError, match="needs a camera"):
        EnvConfig(scene=synthetic_scene, obs="rgb", renderer="none")
    with pytest.raises(ConfigError, match="lidar"):
        EnvConfig(scene=synthetic_scene, obs="state+lidar")
    with pytest.raises(ConfigError, match="radiance field"):
        make_env(EnvConfig(scene=synthetic_scene, obs="rgb", renderer="field"))
    with pytest.raises(ConfigError, match="lighting='sunset'"):
        make_env(EnvConfig(scene=synthetic_scene, lighting="sunset")).reset(seed=0)
    with pytest.raises(ConfigError, match="unknown environment option"):
        make_env(scene=synthetic_scene, colour="red")


def test_info_reports_lighting_fixed_for_the_episode(synthetic_scene):
    env = make_env(EnvConfig(scene=synthetic_scene, obs="rgb", lighting="random", image_size=16))
    try:
        _, info = env.reset(seed=3)
        assert info["lighting"].startswith("random:")
        names = {env.step(np.array([0.0, 0.5]))[4]["lighting"] for _ in range(5)}
        assert names == {info["lighting"]}
    finally:
        env.close()


def test_range_scan_sees_an_obstacle_ahead(synthetic_scene):
    env = make_env(EnvConfig(scene=synthetic_scene, obs="state+scan", scan_rays=8))
    try:
        drivable = env.unwrapped.scene.drivable
        rows, cols = _obstacles(drivable)[0]
        footprint = drivable.cell_centres(rows, cols)
        centre = footprint.mean(axis=0)
        for start, yaw, away in _straight_approach(centre, 0.2):
            if not drivable.is_drivable(centre + np.linspace(0.12, 0.2, 10)[:, None] * away).all():
                continue
            observation, _ = env.reset(seed=0, options={"spawn": (*start, yaw), "goal": (0, 0)})
            scan = observation["scan"] * env.unwrapped.scan_range
            face = np.max(footprint @ away - centre @ away)  # obstacle edge toward the vehicle
            assert scan[0] == pytest.approx(0.2 - face, abs=0.015)  # straight ahead: the face
            assert scan[4] > scan[0] + 0.05  # straight behind: farther
            return
        pytest.fail("no clear approach to an obstacle")
    finally:
        env.close()


def test_rgb_array_render_passes_gymnasium_render_checks(synthetic_scene):
    env = gymnasium.make(
        "driveenv/Drive-v0", scene=str(synthetic_scene), render_mode="rgb_array", image_size=16
    )
    try:
        check_env(env.unwrapped)  # includes the render checks
        env.reset(seed=0)
        for _ in range(15):
            env.step(np.array([0.0, 1.0]))
        frame = env.render()
        assert frame.dtype == np.uint8 and frame.shape == (256, 512, 3)  # camera | top-down map
        map_panel = frame[:, 256:]
        trajectory = np.all(map_panel == (30, 90, 220), axis=-1)
        assert trajectory.any()  # the driven path is drawn
    finally:
        env.close()
