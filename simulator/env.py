"""The Gymnasium environment: a vehicle driving in a scene bundle.

``DriveEnv`` glues the parts together: ``world`` (PyBullet contacts), ``vehicles`` (kinematics),
``tasks`` (reward, termination), ``lighting`` (per-episode look) and ``renderers`` (camera).
A step validates the action (NaN/inf -> ``ActionError`` before the physics state is touched),
advances the vehicle ``action_repeat`` physics sub-steps, stopping at the first contact or
the first sub-step off the drivable map, scores the task, then renders the camera.
Physics and rendering are separate methods so that ``simulator.vector`` can step every
sub-environment's physics and then render all their cameras in one batched call.

``reset(options=...)`` accepts ``task_index`` (which of the scene's spawn/goal/route triples),
or an explicit ``spawn`` (x, y, yaw) with ``goal`` (x, y[, radius]) and optional ``route``
(K, 2): experts, tests and evaluation campaigns use them to pose exact situations.

Road scenes (``simulator.routes``): ``spawn="random"`` draws a section of the recorded route for
both tasks (the goal on the road ahead); the route task's spawns are offset sideways and in
heading (``route_lateral_offset``, ``route_heading_offset_deg``). A route task's step info holds
``lateral_deviation`` and ``mean_lateral_deviation`` / ``max_lateral_deviation`` over the
episode's steps so far, so the episode's last info holds its lane metrics (``simulator.tasks``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from common.polyline import Polyline
from scene_builder.bundle import SceneBundle
from simulator.config import EnvConfig
from simulator.errors import ActionError, ConfigError
from simulator.lighting import EpisodeLighting, choose_lighting
from simulator.renderers import NullRenderer, Renderer, make_renderer
from simulator.routes import (
    offset_spawn,
    random_section,
    recorded_route,
    section_length,
    spawn_offsets,
)
from simulator.sensors import STATE_FIELDS, STATE_LIMIT, CameraModel, state_vector
from simulator.tasks import Task
from simulator.vehicles import (
    VehicleState,
    camera_mount_height,
    is_road_scene,
    scene_vehicle_spec,
    step_vehicle,
)
from simulator.world import World

ROUTE_LOOKAHEAD_LENGTHS = 2.0  # route target point, in vehicle lengths ahead


def load_scene_for(config: EnvConfig):
    """Load the scene bundle named by ``config.scene`` (BundleError on problems)."""
    from scene_builder.bundle import load_scene

    if not config.scene:
        raise ConfigError("scene: give the path of a scene bundle (EnvConfig(scene=PATH))")
    return load_scene(config.scene)


def scene_and_config(
    config: EnvConfig | None, options: dict[str, Any]
) -> tuple[SceneBundle | None, EnvConfig]:
    """Split a loaded ``scene=SceneBundle`` off the options and build the ``EnvConfig``.

    ``scene`` may be a bundle directory or a loaded ``SceneBundle`` (then nothing is read again
    and ``config.scene`` records the bundle's root); the other options are ``EnvConfig`` fields.
    """
    bundle = options.pop("scene", None) if isinstance(options.get("scene"), SceneBundle) else None
    if config is None:
        config = EnvConfig.from_dict({**options, **({"scene": bundle.root} if bundle else {})})
    elif options:
        raise ConfigError("pass either an EnvConfig or keyword options, not both")
    elif bundle is not None:
        config = replace(config, scene=bundle.root)
    return bundle, config


class DriveEnv(gym.Env):
    """A vehicle in a scene bundle: see ``EnvConfig`` for every option.

    ``scene`` (in ``config`` or as a keyword) is a bundle directory or a loaded ``SceneBundle``;
    ``shared_renderer`` is another env's renderer, reused by ``simulator.vector``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        config: EnvConfig | None = None,
        render_mode: str | None = None,
        *,
        shared_renderer: Renderer | None = None,
        **options: Any,
    ) -> None:
        bundle, config = scene_and_config(config, options)
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode={render_mode!r}: only 'rgb_array' is supported")
        if config.agents != 1:
            raise ConfigError(f"agents={config.agents}: one vehicle here; use simulator.make_multi")
        self.config = config
        self.sensors = config.sensors  # read every step
        self.render_mode = render_mode
        self.scene = bundle if bundle is not None else load_scene_for(config)
        if not self.scene.spawns and config.spawn == "scene":
            raise ConfigError(f"{self.scene.root}: the scene has no spawns (use spawn='random')")
        arena = float(self.scene.arena_size)
        self.vehicle_spec = scene_vehicle_spec(
            config.vehicle, self.scene.extras, arena, config.vehicle_length
        )
        self.arena_size = arena
        self.max_depth = float(config.max_depth or arena)
        self.scan_range = float(config.scan_range or 0.5 * arena)
        self.camera = CameraModel(
            width=config.image_size,
            height=config.image_size,
            fov_deg=config.camera_fov_deg,
            forward_offset=0.3 * self.vehicle_spec.length,
            mount_height=camera_mount_height(config, self.scene.extras, self.vehicle_spec),
            pitch_deg=config.camera_pitch_deg,
        )
        self.observation_space = self._observation_space()
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._owns_renderer = shared_renderer is None
        self._world: World | None = None
        self.renderer: Renderer | None = None
        try:
            self.renderer = (
                shared_renderer if shared_renderer is not None else self._make_renderer()
            )
            self._world = World(self.scene.collision_mesh_path, self.vehicle_spec)
        except BaseException:
            self.close()
            raise
        self.vehicle = VehicleState()
        self._terrain = is_road_scene(self.scene.extras)  # follow the ground's height
        self._ground_z = 0.0
        self.task: Task | None = None
        self.lighting: EpisodeLighting | None = None
        self._steps = 0
        self._trajectory: list[tuple[float, float]] = []
        self._last_info: dict[str, Any] = {}
        self._last_images: dict[str, np.ndarray] = {}
        self._map_canvas = None  # simulator.viewer.MapCanvas, drawn on first render()

    # ----------------------------------------------------------------- spaces and set-up
    def _make_renderer(self) -> Renderer:
        if not self.config.needs_camera and self.render_mode is None:
            return NullRenderer()
        kind = self.config.renderer if self.config.renderer != "none" else "mesh"
        return make_renderer(kind, self.scene, self.camera, self.max_depth, self.config.field_mode)

    def _observation_space(self) -> spaces.Dict:
        size = self.config.image_size
        parts: dict[str, spaces.Space] = {}
        for sensor in self.sensors:
            if sensor == "rgb":
                parts["rgb"] = spaces.Box(0, 255, shape=(size, size, 3), dtype=np.uint8)
            elif sensor == "depth":
                parts["depth"] = spaces.Box(
                    0.0, self.max_depth, shape=(size, size, 1), dtype=np.float32
                )
            elif sensor == "state":
                parts["state"] = spaces.Box(
                    -STATE_LIMIT, STATE_LIMIT, shape=(len(STATE_FIELDS),), dtype=np.float32
                )
            elif sensor == "scan":
                parts["scan"] = spaces.Box(
                    0.0, 1.0, shape=(self.config.scan_rays,), dtype=np.float32
                )
        return spaces.Dict(parts)

    # ----------------------------------------------------------------- episode start
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        info = self.begin_episode(seed=seed, options=options)
        return self.observe(self.render_cameras([self])[0]), info

    def begin_episode(self, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset everything but the camera images; returns the reset ``info``.

        The first reset without a seed uses ``config.seed``, so a config alone fixes the run.
        """
        if seed is None and self._np_random is None:
            seed = self.config.seed
        super().reset(seed=seed)
        rng = self.np_random
        spawn, goal_xy, goal_radius, route = self._choose_task(rng, options or {})
        self.vehicle = VehicleState(x=spawn[0], y=spawn[1], yaw=spawn[2])
        self.task = Task(self.config.task, goal_xy, goal_radius, route)
        self.task.reset(self.vehicle.xy)
        self.lighting = choose_lighting(
            self.config.lighting, self.scene.lighting, rng, self.config.photometric_augmentation
        )
        self._ground_z = 0.0
        if self._terrain:
            found = self._world.ground_height(self.vehicle.x, self.vehicle.y)
            self._ground_z = 0.0 if found is None else found
        self._world.place_vehicle(self.vehicle.x, self.vehicle.y, self.vehicle.yaw, self._ground_z)
        self._steps = 0
        self._trajectory = [(self.vehicle.x, self.vehicle.y)]
        self._last_info = self._info(
            success=False,
            collision=False,
            off_road=False,
            route_completion=self.task.completion(self.vehicle.xy),
            distance_to_goal=self.task.distance_to_goal(self.vehicle.xy),
        )
        return dict(self._last_info)

    def _choose_task(self, rng: np.random.Generator, options: dict[str, Any]):
        if "spawn" in options:
            spawn = np.asarray(options["spawn"], dtype=np.float64).reshape(3)
            if "goal" not in options:
                raise ConfigError("reset options: 'spawn' needs a 'goal' (x, y[, radius])")
            goal = np.asarray(options["goal"], dtype=np.float64).reshape(-1)
            radius = goal[2] if goal.size > 2 else self._default_goal_radius()
            route = options.get("route")
            route = np.stack([spawn[:2], goal[:2]]) if route is None else np.asarray(route)
            return spawn, goal[:2], float(radius), route
        if self.config.spawn == "random" and "task_index" not in options:
            spawn, goal, radius, route = self._random_task(rng)
        else:
            spawn, goal, radius, route = self._scene_task(rng, options)
        lateral, heading = spawn_offsets(self.config, self.scene.extras)
        if self.config.task == "route" and (lateral > 0 or heading > 0):
            drivable = self.scene.drivable
            spawn = offset_spawn(route, drivable, self.vehicle_spec, lateral, heading, rng)
        return spawn, goal, radius, route

    def _scene_task(self, rng: np.random.Generator, options: dict[str, Any]):
        """The bundle's spawn/goal/route triple ``task_index`` (random if not given)."""
        scene = self.scene
        count = len(scene.spawns)
        index = int(options.get("task_index", rng.integers(count)))
        if not 0 <= index < count:
            raise ConfigError(f"task_index={index}: the scene has {count} tasks")
        s, g = scene.spawns[index], scene.goals[index]
        route = scene.routes[index] if index < len(scene.routes) else None
        if route is None or len(route) < 2:
            route = np.array([[s.x, s.y], [g.x, g.y]])
        radius = self.config.goal_radius or g.radius
        return np.array([s.x, s.y, s.yaw]), np.array([g.x, g.y]), float(radius), np.asarray(route)

    def _random_task(self, rng: np.random.Generator):
        """A new task: a section of a road scene's recorded route, or a drivable-map sample."""
        recorded = recorded_route(self.scene.extras)
        if recorded is not None:
            length = section_length(Polyline(recorded), self.scene.routes)
            spawn, goal, route = random_section(recorded, length, rng)
            return spawn, goal, self._default_goal_radius(), route
        from scene_builder.drivable import sample_tasks

        spawns, goals, routes = sample_tasks(
            self.scene.drivable,
            1,
            seed=int(rng.integers(2**31)),
            clearance=self.vehicle_spec.bounding_radius,
            goal_radius=self._default_goal_radius(),
            min_distance=0.25 * self.arena_size,
        )
        s, g = spawns[0], goals[0]
        radius = self.config.goal_radius or g.radius
        return np.array([s.x, s.y, s.yaw]), np.array([g.x, g.y]), float(radius), routes[0]

    def _default_goal_radius(self) -> float:
        if self.config.goal_radius:
            return float(self.config.goal_radius)
        if self.scene.goals:
            return float(self.scene.goals[0].radius)
        return 0.5 * self.vehicle_spec.length

    # ----------------------------------------------------------------- stepping
    def step(self, action):
        reward, terminated, truncated, info = self.advance(action)
        return self.observe(self.render_cameras([self])[0]), reward, terminated, truncated, info

    def advance(self, action) -> tuple[float, bool, bool, dict[str, Any]]:
        """Physics and task for one env step, without rendering."""
        if self.task is None:
            raise ConfigError("call reset() before step()")
        action = self._check_action(action)
        vehicle, world, drivable = self.vehicle, self._world, self.scene.drivable
        collision = off_road = False
        for _ in range(self.config.action_repeat):
            step_vehicle(self.vehicle_spec, vehicle, action, self.config.physics_dt)
            if self._terrain:
                found = world.ground_height(vehicle.x, vehicle.y, self._ground_z)
                self._ground_z = self._ground_z if found is None else found
            world.place_vehicle(vehicle.x, vehicle.y, vehicle.yaw, self._ground_z)
            if world.in_collision():
                collision = True
                break
            if not drivable.drivable_at(vehicle.x, vehicle.y):
                off_road = True
                break
        self._steps += 1
        self._trajectory.append((vehicle.x, vehicle.y))
        outcome = self.task.step(vehicle.xy, collision, off_road)
        truncated = not outcome.terminated and self._steps >= self.config.max_episode_steps
        self._last_info = self._info(
            success=outcome.success,
            collision=collision,
            off_road=off_road,
            route_completion=outcome.route_completion,
            distance_to_goal=outcome.distance_to_goal,
        )
        return outcome.reward, outcome.terminated, truncated, dict(self._last_info)

    def _check_action(self, action) -> np.ndarray:
        try:
            array = np.asarray(action, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ActionError(f"action {action!r} is not a numeric array of 2 values") from None
        if array.shape != (2,):
            raise ActionError(f"action has {array.size} values; this env takes 2 in [-1, 1]")
        if not np.all(np.isfinite(array)):
            raise ActionError(f"action {array.tolist()} contains NaN or infinity")
        return array

    def _info(self, **outcome) -> dict[str, Any]:
        v = self.vehicle
        info = {**outcome, "lighting": self.lighting.name, "pose": np.array([v.x, v.y, v.yaw])}
        if self.task.kind == "route":  # lane keeping; every info of an env has the same keys
            info["lateral_deviation"] = self.task.lateral_deviation(v.xy)
            info.update(self.task.lane_metrics())
        return info

    # ----------------------------------------------------------------- observations
    def camera_pose(self) -> np.ndarray:
        pose = self.camera.camera_to_world(self.vehicle.x, self.vehicle.y, self.vehicle.yaw)
        pose[2, 3] += self._ground_z  # the mount height is above the ground under the vehicle
        return pose

    def render_cameras(self, envs: list[DriveEnv]) -> list[dict[str, np.ndarray]]:
        """Camera images of ``envs`` (sharing this env's renderer) in one batched call."""
        if "rgb" not in self.sensors and "depth" not in self.sensors:
            return [{} for _ in envs]
        poses = np.stack([env.camera_pose() for env in envs])
        rgb, depth = self.renderer.render(poses, [env.lighting for env in envs])
        images = []
        for i, env in enumerate(envs):
            frame = {}
            if "rgb" in env.sensors:
                frame["rgb"] = (env.lighting.augment(rgb[i]) * 255.0 + 0.5).astype(np.uint8)
            if "depth" in env.sensors:
                frame["depth"] = depth[i][..., None].astype(np.float32)
            images.append(frame)
        return images

    def observe(self, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation dict, given this step's camera images."""
        self._last_images = images
        obs: dict[str, np.ndarray] = {}
        for sensor in self.sensors:
            if sensor in ("rgb", "depth"):
                obs[sensor] = images[sensor]
            elif sensor == "state":
                obs["state"] = self._state()
            elif sensor == "scan":
                v = self.vehicle
                ranges = self._world.range_scan(
                    v.x, v.y, v.yaw, self.config.scan_rays, self.scan_range
                )
                obs["scan"] = ranges / np.float32(self.scan_range)
        return obs

    def _state(self) -> np.ndarray:
        v, task, length = self.vehicle, self.task, self.vehicle_spec.length
        target = task.target_point(v.xy, ROUTE_LOOKAHEAD_LENGTHS * length)
        return state_vector(
            (v.x, v.y),
            v.yaw,
            v.speed,
            v.yaw_rate,
            v.steer,
            target,
            task.goal_xy,
            task.completion(v.xy),
            self._steps / self.config.max_episode_steps,
            self.vehicle_spec,
            self.arena_size,
            task.route_frame(v.xy, v.yaw, length),
        )

    # ----------------------------------------------------------------- privileged access
    def privileged_state(self) -> dict[str, Any]:
        """Everything a scripted expert may use (not available to learning agents)."""
        v, task = self.vehicle, self.task
        return {
            "pose": np.array([v.x, v.y, v.yaw]),
            "velocity": np.array([v.speed, v.yaw_rate]),
            "steer": v.steer,
            "goal": np.array([*task.goal_xy, task.goal_radius]),
            "route": task.route.copy(),
            "route_completion": task.completion(v.xy),
            "drivable": self.scene.drivable,
            "vehicle": self.vehicle_spec,
            "task": self.config.task,
            "control_dt": self.config.control_dt,
            "arena_size": self.arena_size,
        }

    # ----------------------------------------------------------------- viewing and closing
    def render(self):
        if self.render_mode != "rgb_array":
            return None
        from simulator.viewer import compose_frame

        images = self._last_images
        if "rgb" not in images:
            images = self.render_cameras_for_view()
        return compose_frame(self, images.get("rgb"))

    def render_cameras_for_view(self) -> dict[str, np.ndarray]:
        """A camera image for viewing even when the observation has none."""
        if self.renderer is None or isinstance(self.renderer, NullRenderer):
            return {}
        rgb, _ = self.renderer.render(self.camera_pose()[None], [self.lighting])
        return {"rgb": (rgb[0] * 255.0 + 0.5).astype(np.uint8)}

    @property
    def trajectory(self) -> np.ndarray:
        return np.array(self._trajectory)

    def close(self) -> None:
        if self._world is not None:
            self._world.close()
            self._world = None
        if self.renderer is not None and self._owns_renderer:
            self.renderer.close()
        self.renderer = None
        super().close()


def make_env(
    config: EnvConfig | None = None, render_mode: str | None = None, **options
) -> DriveEnv:
    """A ``DriveEnv`` from an ``EnvConfig`` or from its fields as keywords.

    ``scene=`` may be a loaded ``SceneBundle`` in either form (``make_env(config, scene=bundle)``
    too): the bundle is then used as it is, neither read nor hashed again.
    """
    return DriveEnv(config, render_mode=render_mode, **options)
