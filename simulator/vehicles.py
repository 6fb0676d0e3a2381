"""Vehicle models: a kinematic bicycle car and a differential-drive robot, sized from the scene.

Both are kinematic: the action sets steering/acceleration (car) or wheel speeds (diffdrive),
the pose is integrated in closed form, and PyBullet is used only for the collision body
(``simulator.world``). Kinematic models are what small-robot and driving benchmarks use at
these speeds, and they make a step cost microseconds instead of a rigid-body solve.

Size. A scene reconstructed from a phone video can be a 1 m table top or a 50 m street.
Table-top (arena) scenes: the vehicle length defaults to a tenth of the scene's ``arena_size``
(the diagonal of its drivable area) or the bundle's ``extras["vehicle_length"]``, and every other
dimension, speed and acceleration is a fixed multiple of that length: on the bird table (about
1 m across) the car is about 12 cm long, drives at up to 2 lengths per second and turns within
about 1.5 lengths. Road scenes (``extras["scene_kind"] == "road"``, metric by construction):
the car is a real passenger car, 4.5 x 1.8 x 1.5 m unless the bundle's extras say otherwise, with
limits in m/s of an urban drive (``ROAD_CAR``: 12 m/s top speed, 3 m/s^2, 0.6 rad of steering
at 0.8 rad/s on a 2.7 m wheelbase, the figures of a compact car); the differential-drive robot is
a 0.8 m delivery robot at walking pace (``ROAD_DIFFDRIVE``). ``EnvConfig.vehicle_length``
overrides the length either way. The URDFs in ``assets/vehicles`` are drawn at length 1 (the
table-top proportions); ``simulator.world`` builds the collision box from the spec itself, so a
road car keeps its own width and height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VEHICLE_ASSETS = Path(__file__).resolve().parents[1] / "assets" / "vehicles"
DEFAULT_LENGTH_FRACTION = 0.1  # vehicle length as a fraction of the scene's arena size
ROAD_KIND = "road"  # extras["scene_kind"] of a street or road scene (missing means an arena)


@dataclass(frozen=True)
class RoadLimits:
    """Metric dimensions and limits of a vehicle on a road scene (see the module docstring)."""

    length: float
    width: float
    height: float
    ground_clearance: float
    wheelbase: float
    max_speed: float
    max_reverse_speed: float
    max_accel: float
    max_steer: float
    max_steer_rate: float


ROAD_CAR = RoadLimits(4.5, 1.8, 1.5, 0.15, 2.7, 12.0, 3.0, 3.0, 0.6, 0.8)
ROAD_DIFFDRIVE = RoadLimits(0.8, 0.6, 0.7, 0.05, 0.5, 1.5, 1.5, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class VehicleSpec:
    """Dimensions (metres) and limits of a vehicle; all derived from its length by default."""

    kind: str
    length: float
    width: float
    height: float
    ground_clearance: float  # the collision body starts this high, so flat ground never touches it
    wheelbase: float  # car: axle distance; diffdrive: wheel track
    max_speed: float  # m/s forward
    max_reverse_speed: float  # m/s
    max_accel: float  # m/s^2 (car)
    max_steer: float  # rad (car)
    max_steer_rate: float  # rad/s (car)
    max_yaw_rate: float  # rad/s (for normalising the state vector)

    @property
    def urdf_path(self) -> Path:
        return VEHICLE_ASSETS / f"{self.kind}.urdf"

    @property
    def bounding_radius(self) -> float:
        return 0.5 * math.hypot(self.length, self.width)


def vehicle_spec(kind: str, length: float) -> VehicleSpec:
    """The table-top spec of a ``kind`` vehicle (``car`` or ``diffdrive``) of ``length`` metres."""
    if kind == "car":
        max_speed, max_steer, wheelbase = 2.0 * length, 0.5, 0.6 * length
        return VehicleSpec(
            kind="car",
            length=length,
            width=0.5 * length,
            height=0.35 * length,
            ground_clearance=0.08 * length,
            wheelbase=wheelbase,
            max_speed=max_speed,
            max_reverse_speed=0.5 * max_speed,
            max_accel=3.0 * length,
            max_steer=max_steer,
            max_steer_rate=3.0,
            max_yaw_rate=max_speed * math.tan(max_steer) / wheelbase,
        )
    if kind == "diffdrive":
        track, max_speed = 0.8 * length, 1.5 * length
        return VehicleSpec(
            kind="diffdrive",
            length=length,
            width=0.9 * length,
            height=0.6 * length,
            ground_clearance=0.08 * length,
            wheelbase=track,
            max_speed=max_speed,
            max_reverse_speed=max_speed,
            max_accel=0.0,
            max_steer=0.0,
            max_steer_rate=0.0,
            max_yaw_rate=2.0 * max_speed / track,
        )
    raise ValueError(f"unknown vehicle kind {kind!r}")


def road_vehicle_spec(
    kind: str,
    length: float | None = None,
    width: float | None = None,
    height: float | None = None,
) -> VehicleSpec:
    """The metric spec of a ``kind`` vehicle on a road; given dimensions replace the defaults.

    The wheelbase keeps its share of the length (2.7 of 4.5 m for the car), the limits are in
    m/s and do not scale with the size.
    """
    if kind not in ("car", "diffdrive"):
        raise ValueError(f"unknown vehicle kind {kind!r}")
    base = ROAD_CAR if kind == "car" else ROAD_DIFFDRIVE
    length = float(length or base.length)
    wheelbase = base.wheelbase * length / base.length
    if kind == "car":
        yaw_rate = base.max_speed * math.tan(base.max_steer) / wheelbase
    else:
        yaw_rate = 2.0 * base.max_speed / wheelbase
    return VehicleSpec(
        kind=kind,
        length=length,
        width=float(width or base.width * length / base.length),
        height=float(height or base.height),
        ground_clearance=base.ground_clearance,
        wheelbase=wheelbase,
        max_speed=base.max_speed,
        max_reverse_speed=base.max_reverse_speed,
        max_accel=base.max_accel,
        max_steer=base.max_steer,
        max_steer_rate=base.max_steer_rate,
        max_yaw_rate=yaw_rate,
    )


def is_road_scene(extras: dict) -> bool:
    """Whether a bundle's extras mark it as a road scene (the contract of ``scene_builder``)."""
    return extras.get("scene_kind") == ROAD_KIND


def scene_vehicle_spec(
    kind: str, extras: dict, arena_size: float, length: float | None = None
) -> VehicleSpec:
    """The vehicle a scene asks for: metric on a road scene, the table-top rule otherwise.

    ``length`` (``EnvConfig.vehicle_length``) overrides the scene's recommendation either way.
    On a road the car takes ``extras["vehicle_length"/"vehicle_width"/"vehicle_height"]``; the
    diffdrive robot keeps its own size, which is not the car's.
    """
    if is_road_scene(extras):
        if kind == "car":
            return road_vehicle_spec(
                kind,
                length or extras.get("vehicle_length"),
                None if length else extras.get("vehicle_width"),
                extras.get("vehicle_height"),
            )
        return road_vehicle_spec(kind, length)
    length = length or extras.get("vehicle_length")
    return vehicle_spec(kind, float(length or DEFAULT_LENGTH_FRACTION * arena_size))


@dataclass
class VehicleState:
    """Planar state: pose, forward speed, yaw rate and (car) current steering angle."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    speed: float = 0.0
    yaw_rate: float = 0.0
    steer: float = 0.0

    def copy(self) -> VehicleState:
        return VehicleState(self.x, self.y, self.yaw, self.speed, self.yaw_rate, self.steer)

    @property
    def xy(self) -> np.ndarray:
        return np.array([self.x, self.y])


def step_vehicle(spec: VehicleSpec, state: VehicleState, action: np.ndarray, dt: float) -> None:
    """Advance ``state`` in place by ``dt`` seconds under a normalised action in [-1, 1]^2.

    car: ``action = (steer, accel)``; steering moves toward ``steer * max_steer`` at most
    ``max_steer_rate`` rad/s, speed changes by ``accel * max_accel`` (clipped to the limits), and
    the pose (the body centre) turns at the kinematic bicycle's yaw rate speed * tan(steer) /
    wheelbase.
    diffdrive: ``action = (left, right)`` wheel speeds as fractions of ``max_speed``.
    """
    a0 = min(1.0, max(-1.0, float(action[0])))
    a1 = min(1.0, max(-1.0, float(action[1])))
    if spec.kind == "car":
        target = a0 * spec.max_steer
        max_change = spec.max_steer_rate * dt
        state.steer += min(max_change, max(-max_change, target - state.steer))
        state.speed = min(
            spec.max_speed, max(-spec.max_reverse_speed, state.speed + a1 * spec.max_accel * dt)
        )
        state.yaw_rate = state.speed * math.tan(state.steer) / spec.wheelbase
    else:
        left, right = a0 * spec.max_speed, a1 * spec.max_speed
        state.speed = 0.5 * (left + right)
        state.yaw_rate = (right - left) / spec.wheelbase
    # exact integration along the arc (straight line when the yaw rate is zero)
    yaw0, dyaw = state.yaw, state.yaw_rate * dt
    if abs(dyaw) < 1e-9:
        state.x += state.speed * dt * math.cos(yaw0)
        state.y += state.speed * dt * math.sin(yaw0)
    else:
        radius = state.speed / state.yaw_rate
        state.x += radius * (math.sin(yaw0 + dyaw) - math.sin(yaw0))
        state.y -= radius * (math.cos(yaw0 + dyaw) - math.cos(yaw0))
    state.yaw = (yaw0 + dyaw + math.pi) % (2.0 * math.pi) - math.pi


def camera_mount_height(config, extras: dict, spec: VehicleSpec) -> float:
    """The camera's height: ``config.camera_height``, else the capture camera's height on a road
    (``extras["camera_height"]``, so the vehicle sees the street as it was filmed), else
    0.6 x the vehicle length (the table-top rule)."""
    if config.camera_height:
        return float(config.camera_height)
    if is_road_scene(extras) and extras.get("camera_height"):
        return float(extras["camera_height"])
    return 0.6 * spec.length
