"""Vehicle models: a kinematic bicycle car and a differential-drive robot, sized from the scene.

Both are kinematic: the action sets steering/acceleration (car) or wheel speeds (diffdrive),
the pose is integrated in closed form, and PyBullet is used only for the collision body
(``simulator.world``). Kinematic models are what small-robot and driving benchmarks use at
these speeds, and they make a step cost microseconds instead of a rigid-body solve.

Size. A scene reconstructed from a phone video can be a 1 m table top or a 50 m street, so the
vehicle length defaults to a tenth of the scene's ``arena_size`` (the diagonal of its drivable
area) and every other dimension, speed and acceleration is a fixed multiple of that length:
on the bird table (about 1 m across) the car is about 12 cm long, drives at up to 2 lengths
per second and turns within about 1.5 lengths. ``EnvConfig.vehicle_length`` overrides it.
The URDFs in ``assets/vehicles`` are drawn at length 1 and loaded with that scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VEHICLE_ASSETS = Path(__file__).resolve().parents[1] / "assets" / "vehicles"
DEFAULT_LENGTH_FRACTION = 0.1  # vehicle length as a fraction of the scene's arena size


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
    """The spec of a ``kind`` vehicle (``car`` or ``diffdrive``) of the given length in metres."""
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
