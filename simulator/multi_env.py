"""Several robots in one scene: a PettingZoo ``ParallelEnv`` over any scene bundle.

``make_multi(EnvConfig(scene=..., agents=N))`` puts N vehicles of ``config.vehicle`` in one
PyBullet world (``simulator.multi_world``) with vehicle-scene and vehicle-vehicle contacts,
each sized as the single-vehicle environment sizes its vehicle (``scene_vehicle_spec``: a
metric car on a road scene, the table-top rule otherwise).
The task is cooperative: every robot must reach its own goal, and the spawns and goals are
drawn so that the robots' shortest paths cross or share a passage (``simulator.multi_tasks``).

Per robot, per step, the reward is the single-vehicle task's (``simulator.tasks``: progress,
+10 on arrival, -10 on a collision or leaving the drivable area, -0.01 per step). A robot that
arrives leaves the episode and its body leaves the world (as a delivery robot that drives into
its dock). Any collision, with the scene or between robots, ends the episode for the whole team,
since the team can then no longer succeed. ``episode_stats`` scores the team: success (all
arrived), robots in robot-robot collisions, scene collisions, robots off the map, steps.

Observations (a Dict per robot, the sensors of ``config.obs``):
- ``state``: the single-vehicle state vector (``simulator.sensors.STATE_FIELDS``) followed by
  ``NEIGHBOUR_FIELDS`` for every other robot (in this robot's frame, lengths over the arena
  size; all zero once that robot has left);
- ``scan``: the range scan, which sees the scene and the other robots;
- ``rgb``/``depth``: every robot's camera, all N rendered in one batched renderer call (the
  camera draws the scene, not the other robots: they are not in the baked mesh or the field).
``state()`` is the global state for centralised training (``GLOBAL_FIELDS`` per robot).

Actions: ``actions="discrete"`` gives ``Discrete(9)``, steer {left, straight, right} times
speed {stop, half, full} (``DISCRETE_ACTIONS``, tracked by a proportional speed controller),
for value-based learners; ``"continuous"`` gives the single env's ``Box(-1, 1, (2,))``.
``reset(options=...)`` takes explicit ``spawns`` (N, 3) and ``goals`` (N, 2) to pose a
situation, or a ``task_seed``: a fresh arrangement drawn from that seed alone, so an evaluation
episode is the same whatever the environment ran before it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from scene_builder.bundle import SceneBundle
from simulator.config import EnvConfig
from simulator.env import load_scene_for, scene_and_config
from simulator.errors import ActionError, ConfigError
from simulator.lighting import choose_lighting
from simulator.multi_tasks import RobotTask, crossing_tasks
from simulator.multi_world import MultiWorld
from simulator.renderers import NullRenderer, make_renderer
from simulator.sensors import STATE_FIELDS, STATE_LIMIT, CameraModel, state_vector
from simulator.tasks import Task
from simulator.vehicles import (
    VehicleState,
    camera_mount_height,
    is_road_scene,
    scene_vehicle_spec,
    step_vehicle,
)

ACTION_SETS = ("discrete", "continuous")
# (steer, speed as a fraction of max speed); index 0 is "stop, wheels straight"
DISCRETE_ACTIONS = tuple((steer, speed) for speed in (0.0, 0.5, 1.0) for steer in (0.0, -1.0, 1.0))
NEIGHBOUR_FIELDS = ("present", "dx", "dy", "heading_cos", "heading_sin", "speed")
TASK_POOL = 512  # spawn/goal arrangements per environment (see _sample_tasks)
GLOBAL_FIELDS = ("present", "x", "y", "heading_cos", "heading_sin", "speed", "goal_dx", "goal_dy")


class MultiDriveEnv(ParallelEnv):
    """N robots in a scene bundle; see the module docstring and ``EnvConfig``."""

    metadata = {"name": "driveenv_multi_v0", "render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        config: EnvConfig | None = None,
        actions: str = "discrete",
        render_mode: str | None = None,
        **options: Any,
    ) -> None:
        bundle, config = scene_and_config(config, options)
        if actions not in ACTION_SETS:
            raise ConfigError(f"actions={actions!r}: choose one of {', '.join(ACTION_SETS)}")
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode={render_mode!r}: only 'rgb_array' is supported")
        self.config, self.action_set, self.render_mode = config, actions, render_mode
        self.scene: SceneBundle = bundle if bundle is not None else load_scene_for(config)
        self.count = config.agents
        self.possible_agents = [f"robot_{i}" for i in range(self.count)]
        self.agents: list[str] = []
        arena = float(self.scene.arena_size)
        extras = self.scene.extras
        self.spec = scene_vehicle_spec(config.vehicle, extras, arena, config.vehicle_length)
        self._terrain = is_road_scene(extras)  # robots follow the ground's height, as one does
        self.arena_size = arena
        self.scan_range = float(config.scan_range or 0.5 * arena)
        self.max_depth = float(config.max_depth or arena)
        low, high = self.scene.drivable.drivable_bounds()
        self._centre = 0.5 * (low + high)
        self.camera = CameraModel(
            width=config.image_size,
            height=config.image_size,
            fov_deg=config.camera_fov_deg,
            forward_offset=0.3 * self.spec.length,
            mount_height=camera_mount_height(config, extras, self.spec),
            pitch_deg=config.camera_pitch_deg,
        )
        self._observation_space = self._make_observation_space()
        self._action_space = (
            spaces.Discrete(len(DISCRETE_ACTIONS))
            if actions == "discrete"
            else spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        )
        size = len(GLOBAL_FIELDS) * self.count
        self.state_space = spaces.Box(-STATE_LIMIT, STATE_LIMIT, shape=(size,), dtype=np.float32)
        self.renderer = None
        self._world = None
        try:
            self.renderer = self._make_renderer()
            self._world = MultiWorld(self.scene.collision_mesh_path, self.spec, self.count)
        except BaseException:
            self.close()
            raise
        self._rng = np.random.default_rng(config.seed)
        self._pool_rng = np.random.default_rng([config.seed, 1])
        self._task_pool: list[list[RobotTask]] = []
        self.vehicles = [VehicleState() for _ in range(self.count)]
        self.tasks: list[Task] = []
        self.present = np.zeros(self.count, dtype=bool)
        self.trajectories: list[list[tuple[float, float]]] = []
        self.episode_stats: dict[str, Any] = {}
        self.lighting = None
        self._steps = 0

    # ----------------------------------------------------------------- spaces
    def observation_space(self, agent: str) -> spaces.Dict:
        """The same space object for every robot (PettingZoo's API test checks identity)."""
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Space:
        return self._action_space

    def _make_observation_space(self) -> spaces.Dict:
        size, parts = self.config.image_size, {}
        for sensor in self.config.sensors:
            if sensor == "rgb":
                parts["rgb"] = spaces.Box(0, 255, shape=(size, size, 3), dtype=np.uint8)
            elif sensor == "depth":
                parts["depth"] = spaces.Box(0.0, self.max_depth, (size, size, 1), np.float32)
            elif sensor == "state":
                width = len(STATE_FIELDS) + len(NEIGHBOUR_FIELDS) * (self.count - 1)
                parts["state"] = spaces.Box(-STATE_LIMIT, STATE_LIMIT, (width,), np.float32)
            elif sensor == "scan":
                parts["scan"] = spaces.Box(0.0, 1.0, (self.config.scan_rays,), np.float32)
        return spaces.Dict(parts)

    def _make_renderer(self):
        if not self.config.needs_camera:
            return NullRenderer()
        kind = self.config.renderer if self.config.renderer != "none" else "mesh"
        return make_renderer(kind, self.scene, self.camera, self.max_depth, self.config.field_mode)

    # ----------------------------------------------------------------- episodes
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        options = options or {}
        if "spawns" in options:
            tasks = self._explicit_tasks(options)
        elif "task_seed" in options:
            tasks = self._draw_tasks(np.random.default_rng([int(options["task_seed"]), 1]))
        else:
            tasks = self._sample_tasks()
        radius = self._goal_radius()
        self.tasks = []
        for i, task in enumerate(tasks):
            self.vehicles[i] = VehicleState(x=task.spawn[0], y=task.spawn[1], yaw=task.spawn[2])
            self.tasks.append(Task("goal", task.goal, radius, task.route))
            self.tasks[-1].reset(self.vehicles[i].xy)
            self._world.place(i, *task.spawn, self._ground_under(i, None))
        self.lighting = choose_lighting(
            self.config.lighting,
            self.scene.lighting,
            self._rng,
            self.config.photometric_augmentation,
        )
        self.agents = list(self.possible_agents)
        self.present[:] = True
        self._steps = 0
        self.trajectories = [[(v.x, v.y)] for v in self.vehicles]
        self.episode_stats = {
            "team_success": False,
            "arrived": 0,
            "robot_collisions": 0,
            "scene_collisions": 0,
            "off_road": 0,
            "steps": 0,
        }
        infos = {a: self._info(i, False, False, False) for i, a in enumerate(self.agents)}
        return self._observe(range(self.count)), infos

    def _sample_tasks(self) -> list[RobotTask]:
        """A new arrangement for each of the first ``TASK_POOL`` episodes, then one of those.

        Routing costs tens of milliseconds per robot, more than a short episode, so the
        arrangements (drawn from ``config.seed`` alone) are reused once the pool is full. The
        pool is large because a learner that sees few arrangements learns those, not the task:
        its success on arrangements it never saw trails its success on the ones it trained on.
        """
        if len(self._task_pool) < TASK_POOL:
            self._task_pool.append(self._draw_tasks(self._pool_rng))
            return self._task_pool[-1]
        return self._task_pool[int(self._rng.integers(TASK_POOL))]

    def _draw_tasks(self, rng: np.random.Generator) -> list[RobotTask]:
        radius = self.spec.bounding_radius
        return crossing_tasks(
            self.scene.drivable,
            self.count,
            rng,
            clearance=radius,
            min_distance=0.25 * self.arena_size,
            spacing=2.5 * radius,
            meet_distance=2.0 * radius,
        )

    def _explicit_tasks(self, options: dict[str, Any]) -> list[RobotTask]:
        spawns = np.asarray(options["spawns"], dtype=np.float64)
        goals = np.asarray(options.get("goals", ()), dtype=np.float64)
        if spawns.shape != (self.count, 3) or goals.shape[:1] != (self.count,):
            raise ConfigError(
                f"reset options: spawns must be ({self.count}, 3) and goals ({self.count}, 2)"
            )
        return [
            RobotTask(spawn, goal[:2], np.stack([spawn[:2], goal[:2]]))
            for spawn, goal in zip(spawns, goals, strict=True)
        ]

    def _goal_radius(self) -> float:
        if self.config.goal_radius:
            return float(self.config.goal_radius)
        if self.scene.goals:
            return float(self.scene.goals[0].radius)
        return 0.5 * self.spec.length

    # ----------------------------------------------------------------- stepping
    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise ConfigError("the episode is over: call reset() before step()")
        moving = [self.possible_agents.index(a) for a in self.agents]
        controls = {i: self._control(i, actions.get(self.possible_agents[i])) for i in moving}
        scene_hit, robot_hit, off_road = self._advance(moving, controls)
        self._steps += 1
        stats = self.episode_stats
        stats["robot_collisions"] += len({i for pair in robot_hit for i in pair})
        stats["scene_collisions"] += len(scene_hit)
        stats["off_road"] += len(off_road)
        crashed = bool(scene_hit or robot_hit or off_road)
        rewards, terminations, truncations, infos = {}, {}, {}, {}
        robots_hit = {i for pair in robot_hit for i in pair}
        for i in moving:
            agent, v = self.possible_agents[i], self.vehicles[i]
            collided = i in scene_hit or i in robots_hit
            outcome = self.tasks[i].step(v.xy, collided, i in off_road)
            rewards[agent] = outcome.reward
            terminations[agent] = outcome.terminated or crashed
            truncations[agent] = not terminations[agent] and (
                self._steps >= self.config.max_episode_steps
            )
            if outcome.success:
                stats["arrived"] += 1
            infos[agent] = self._info(i, outcome.success, collided, i in off_road)
            infos[agent]["robot_collision"] = i in robots_hit
        observations = self._observe(moving)  # before arrived robots leave the world
        for i in moving:
            agent = self.possible_agents[i]
            if terminations[agent] or truncations[agent]:
                self.present[i] = False
                self._world.park(i)
        self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
        stats["steps"] = self._steps
        stats["team_success"] = stats["arrived"] == self.count
        return observations, rewards, terminations, truncations, infos

    def _control(self, index: int, action) -> np.ndarray:
        """The continuous (2,) control of robot ``index`` for its action."""
        if action is None:
            raise ActionError(f"no action for {self.possible_agents[index]}")
        if self.action_set == "continuous":
            array = np.asarray(action, dtype=np.float64).reshape(-1)
            if array.shape != (2,) or not np.all(np.isfinite(array)):
                raise ActionError(f"action {array.tolist()}: needs 2 finite values in [-1, 1]")
            return array
        if not isinstance(action, int | np.integer) or not 0 <= action < len(DISCRETE_ACTIONS):
            raise ActionError(f"action {action!r}: choose an integer in [0, 9)")
        steer, speed = DISCRETE_ACTIONS[int(action)]
        return discrete_control(self.spec, self.vehicles[index], steer, speed, self.config)

    def _advance(self, moving, controls):
        """Move the ``moving`` robots ``action_repeat`` sub-steps, stopping at the first event."""
        scene_hit, robot_hit, off_road = set(), set(), set()
        drivable = self.scene.drivable
        for _ in range(self.config.action_repeat):
            for i in moving:
                v = self.vehicles[i]
                step_vehicle(self.spec, v, controls[i], self.config.physics_dt)
                self._world.place(i, v.x, v.y, v.yaw, self._ground_under(i, self._world.base_z[i]))
            scene_hit = self._world.scene_contacts(moving)
            robot_hit = self._world.robot_contacts(moving)
            off_road = {i for i in moving if not drivable.drivable_at(*self.vehicles[i].xy)}
            if scene_hit or robot_hit or off_road:
                break
        for i in moving:
            self.trajectories[i].append((self.vehicles[i].x, self.vehicles[i].y))
        return scene_hit, robot_hit, off_road

    def _info(self, index: int, success: bool, collision: bool, off_road: bool) -> dict[str, Any]:
        v = self.vehicles[index]
        return {
            "success": success,
            "collision": collision,
            "off_road": off_road,
            "distance_to_goal": self.tasks[index].distance_to_goal(v.xy),
            "pose": np.array([v.x, v.y, v.yaw]),
        }

    # ----------------------------------------------------------------- observations
    def _observe(self, indices) -> dict[str, dict[str, np.ndarray]]:
        indices = list(indices)
        images = self._render_cameras(indices)
        observations = {}
        for k, i in enumerate(indices):
            obs = {}
            for sensor in self.config.sensors:
                if sensor in ("rgb", "depth"):
                    obs[sensor] = images[sensor][k]
                elif sensor == "state":
                    obs["state"] = self._state_of(i)
                elif sensor == "scan":
                    v = self.vehicles[i]
                    ranges = self._world.range_scan(
                        i, v.x, v.y, v.yaw, self.config.scan_rays, self.scan_range
                    )
                    obs["scan"] = ranges / np.float32(self.scan_range)
            observations[self.possible_agents[i]] = obs
        return observations

    def _ground_under(self, index: int, last: float | None) -> float:
        """The ground height under robot ``index`` on a road scene (the single env's rule:
        ``World.ground_height``, keeping ``last`` where no ground is found); 0 elsewhere."""
        if not self._terrain:
            return 0.0
        v = self.vehicles[index]
        found = self._world.world.ground_height(v.x, v.y, last)
        return (last or 0.0) if found is None else found

    def _camera_pose(self, index: int) -> np.ndarray:
        v = self.vehicles[index]
        pose = self.camera.camera_to_world(v.x, v.y, v.yaw)
        pose[2, 3] += self._world.base_z[index]  # the mount height is above the robot's ground
        return pose

    def _render_cameras(self, indices: list[int]) -> dict[str, np.ndarray]:
        """The cameras of robots ``indices``, drawn in one batched renderer call."""
        if not self.config.needs_camera or not indices:
            return {}
        poses = np.stack([self._camera_pose(i) for i in indices])
        rgb, depth = self.renderer.render(poses, [self.lighting] * len(indices))
        rgb = np.stack([self.lighting.augment(image) for image in rgb])
        return {
            "rgb": (rgb * 255.0 + 0.5).astype(np.uint8),
            "depth": depth[..., None].astype(np.float32),
        }

    def _state_of(self, index: int) -> np.ndarray:
        v, task = self.vehicles[index], self.tasks[index]
        own = state_vector(
            (v.x, v.y),
            v.yaw,
            v.speed,
            v.yaw_rate,
            v.steer,
            task.goal_xy,
            task.goal_xy,
            task.completion(v.xy),
            self._steps / self.config.max_episode_steps,
            self.spec,
            self.arena_size,
            task.route_frame(v.xy, v.yaw, self.spec.length),
        )
        others = [self._neighbour(index, j) for j in range(self.count) if j != index]
        return np.concatenate([own, *others]).astype(np.float32)

    def _neighbour(self, index: int, other: int) -> np.ndarray:
        if not self.present[other]:
            return np.zeros(len(NEIGHBOUR_FIELDS), dtype=np.float32)
        me, it = self.vehicles[index], self.vehicles[other]
        c, s = math.cos(me.yaw), math.sin(me.yaw)
        dx, dy = it.x - me.x, it.y - me.y
        values = (
            1.0,
            (c * dx + s * dy) / self.arena_size,
            (-s * dx + c * dy) / self.arena_size,
            math.cos(it.yaw - me.yaw),
            math.sin(it.yaw - me.yaw),
            it.speed / self.spec.max_speed,
        )
        return np.clip(np.array(values, dtype=np.float32), -STATE_LIMIT, STATE_LIMIT)

    def state(self) -> np.ndarray:
        """The global state (``GLOBAL_FIELDS`` per robot; zeros for a robot that has left)."""
        rows = []
        for i, v in enumerate(self.vehicles):
            if not self.present[i] or not self.tasks:
                rows.append(np.zeros(len(GLOBAL_FIELDS)))
                continue
            goal = self.tasks[i].goal_xy
            x, y = (np.array([v.x, v.y]) - self._centre) / self.arena_size
            rows.append(
                (
                    1.0,
                    x,
                    y,
                    math.cos(v.yaw),
                    math.sin(v.yaw),
                    v.speed / self.spec.max_speed,
                    (goal[0] - v.x) / self.arena_size,
                    (goal[1] - v.y) / self.arena_size,
                )
            )
        flat = np.concatenate([np.asarray(r, dtype=np.float64) for r in rows])
        return np.clip(flat, -STATE_LIMIT, STATE_LIMIT).astype(np.float32)

    # ----------------------------------------------------------------- viewing and closing
    def render(self):
        """A top-down map with every robot's goal, trajectory and pose (``rgb_array``)."""
        if self.render_mode != "rgb_array":
            return None
        from simulator.multi_viewer import draw_team

        return draw_team(self)

    def close(self) -> None:
        if self._world is not None:
            self._world.close()
            self._world = None
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None


def discrete_control(spec, vehicle: VehicleState, steer: float, speed: float, config: EnvConfig):
    """The continuous control that steers ``steer`` and tracks ``speed`` x max speed.

    car: (steer, acceleration), the acceleration proportional to the speed error over one
    control period; diffdrive: (left, right) wheel speeds, turning on the spot when stopped.
    """
    if spec.kind == "car":
        error = speed * spec.max_speed - vehicle.speed
        accel = error / (spec.max_accel * config.control_dt)
        return np.array([steer, min(1.0, max(-1.0, accel))])
    turn = 0.5 * steer
    left, right = speed - turn, speed + turn
    scale = max(1.0, abs(left), abs(right))
    return np.array([left / scale, right / scale])


def make_multi(
    config: EnvConfig | None = None,
    actions: str = "discrete",
    render_mode: str | None = None,
    **options: Any,
) -> MultiDriveEnv:
    """A ``MultiDriveEnv`` from an ``EnvConfig`` (``agents`` robots) or its fields as keywords."""
    return MultiDriveEnv(config, actions=actions, render_mode=render_mode, **options)
