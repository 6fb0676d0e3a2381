"""The one typed configuration of a DriveEnv environment, validated on construction.

Every field has a default that works on any scene bundle, so ``EnvConfig(scene=PATH)`` is a
complete configuration. Sizes and speeds of the vehicle default to fractions of the scene's
``arena_size`` (see ``simulator.vehicles``), because a scene reconstructed from a phone video can
be a 1 m table top or a 50 m street: one fixed car would be a giant on the table.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from common.config_cli import option
from simulator.errors import ConfigError

VEHICLES = ("car", "diffdrive")
RENDERERS = ("baked", "field", "mesh", "none")
TASKS = ("goal", "route")
SENSORS = ("rgb", "depth", "state", "scan")
SPAWN_MODES = ("scene", "random")
FIELD_MODES = ("guided", "hybrid", "free")


@dataclass
class EnvConfig:
    """Configuration of one environment (all sub-environments of a vector env share it).

    ``obs`` is a ``+``-joined list of sensors: ``rgb`` (uint8 H x W x 3 camera image), ``depth``
    (float32 H x W x 1 z-depth in metres, misses at ``max_depth``), ``state`` (float32 vector, see
    ``simulator.sensors.STATE_FIELDS``) and ``scan`` (float32 range scan by PyBullet ray casts,
    normalised to [0, 1] of ``scan_range``).
    """

    scene: str | Path = option("", "scene bundle directory")
    vehicle: str = option("car", "vehicle model", choices=VEHICLES)
    obs: str = option("state", "sensors joined by '+': rgb, depth, state, scan")
    renderer: str = option(
        "baked", "camera renderer, used when obs has rgb or depth", choices=RENDERERS
    )
    task: str = option("goal", "reach a goal, or follow a route", choices=TASKS)
    lighting: str = option(
        "capture",
        "a lighting preset of the scene, or 'random' (evaluate: several, comma-separated)",
    )
    photometric_augmentation: bool = option(
        False, "random gain, contrast and colour on camera images, per episode"
    )
    image_size: int = option(64, "camera pixels per side (square images)")
    camera_fov_deg: float = option(90.0, "horizontal field of view of the camera, degrees")
    camera_pitch_deg: float = option(10.0, "downward tilt of the mounted camera, degrees")
    camera_height: float | None = option(
        None,
        "camera metres above the ground (default: the capture camera's height on a road scene,"
        " else 0.6 x the vehicle length)",
    )
    field_mode: str = option(
        "guided",
        "radiance-field rendering: guided (mesh depth places the samples), hybrid (guided where"
        " a ray hits the mesh, marched freely where it misses) or free ray marching",
        choices=FIELD_MODES,
    )
    max_depth: float | None = option(None, "depth clip in metres (default: the scene's arena size)")
    vehicle_length: float | None = option(
        None,
        "vehicle length in metres (default: a 4.5 m car on a road scene, else arena size / 10)",
    )
    scan_rays: int = option(16, "rays of the range scan")
    scan_range: float | None = option(None, "range of the scan in metres (default: arena size / 2)")
    spawn: str = option(
        "scene",
        "scene: the bundle's spawn/goal/route triples; random: new ones drawn each episode",
        choices=SPAWN_MODES,
    )
    route_lateral_offset: float | None = option(
        None,
        "route task: spawns shifted sideways uniformly within +- this many metres of the route"
        " (default: 1.0 on a road scene, 0 elsewhere)",
    )
    route_heading_offset_deg: float | None = option(
        None,
        "route task: spawns turned uniformly within +- this many degrees of the route"
        " (default: 15 on a road scene, 0 elsewhere)",
    )
    goal_radius: float | None = option(
        None, "goal radius in metres (default: the scene goal's radius)"
    )
    physics_dt: float = option(0.05, "seconds per physics sub-step")
    action_repeat: int = option(
        2, "physics sub-steps per environment step (control period = action_repeat x physics_dt)"
    )
    max_episode_steps: int = option(300, "environment steps before an episode is cut off")
    seed: int = option(0, "seed of the environment's randomness")
    agents: int = option(1, "robots in one scene (simulator.make_multi; 1: the single-vehicle env)")

    def __post_init__(self) -> None:
        _check_types(self)
        self.scene = Path(self.scene) if self.scene else self.scene
        self.obs = "+".join(word.strip() for word in str(self.obs).split("+"))
        _choose("vehicle", self.vehicle, VEHICLES)
        _choose("renderer", self.renderer, RENDERERS)
        _choose("task", self.task, TASKS)
        _choose("spawn", self.spawn, SPAWN_MODES)
        _choose("field_mode", self.field_mode, FIELD_MODES)
        words = self.sensors
        if not words or len(set(words)) != len(words):
            raise ConfigError(f"obs={self.obs!r}: give each sensor once, e.g. 'rgb+state'")
        for word in words:
            _choose("obs sensor", word, SENSORS)
        if self.needs_camera and self.renderer == "none":
            raise ConfigError(f"obs={self.obs!r} needs a camera but renderer='none'")
        _positive("image_size", self.image_size)
        _positive("action_repeat", self.action_repeat)
        _positive("max_episode_steps", self.max_episode_steps)
        _positive("physics_dt", self.physics_dt)
        _positive("scan_rays", self.scan_rays)
        if not isinstance(self.agents, int) or isinstance(self.agents, bool) or self.agents < 1:
            raise ConfigError(f"agents={self.agents!r}: must be a positive integer")
        if not 10.0 <= self.camera_fov_deg <= 170.0:
            raise ConfigError(f"camera_fov_deg={self.camera_fov_deg}: must be in [10, 170]")
        for name in ("camera_height", "max_depth", "vehicle_length", "scan_range", "goal_radius"):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value)
        for name in ("route_lateral_offset", "route_heading_offset_deg"):
            _not_negative(name, getattr(self, name))

    @property
    def sensors(self) -> tuple[str, ...]:
        return tuple(word for word in self.obs.split("+") if word)

    @property
    def needs_camera(self) -> bool:
        return "rgb" in self.sensors or "depth" in self.sensors

    @property
    def control_dt(self) -> float:
        return self.physics_dt * self.action_repeat

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scene"] = str(self.scene)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown environment option(s): {', '.join(unknown)}")
        return cls(**data)


def _choose(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: choose one of {', '.join(choices)}")


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"{name}={value!r}: must be a positive number")


def _check_types(config: EnvConfig) -> None:
    """Each field holds a value of its annotated type; numbers are finite.

    Annotations are strings (``from __future__ import annotations``) such as ``"int"`` or
    ``"float | None"``. A wrong type would otherwise surface later as a gymnasium TypeError
    (``image_size=64.5``) or an episode that never ends (``max_episode_steps=inf``). NumPy
    scalars (from sweeps) are turned into Python ones.
    """
    for field in fields(config):
        kinds = {kind.strip() for kind in str(field.type).split("|")}
        value = getattr(config, field.name)
        if value is None and "None" in kinds:
            continue
        if isinstance(value, np.generic):
            value = value.item()
            setattr(config, field.name, value)
        if "bool" in kinds:
            ok, want = isinstance(value, bool), "true or false"
        elif "int" in kinds:
            ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif "float" in kinds:
            number = isinstance(value, int | float) and not isinstance(value, bool)
            ok, want = number and math.isfinite(value), "a finite number"
        elif "Path" in kinds:
            ok, want = isinstance(value, str | os.PathLike), "a path"
        elif "str" in kinds:
            ok, want = isinstance(value, str), "a string"
        else:  # another annotation (a tuple, a list): its own check in __post_init__
            continue
        if not ok:
            raise ConfigError(f"{field.name}={value!r}: must be {want}")


def _not_negative(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise ConfigError(f"{name}={value!r}: must be a number >= 0")
