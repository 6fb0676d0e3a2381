"""Sensors: the vehicle-mounted camera's geometry and the privileged-free state vector.

The camera is mounted on the vehicle's centre line, ``0.3 x length`` ahead of the body centre,
at ``camera_height`` above the ground, looking forward and tilted down by ``camera_pitch_deg``.
Its pose is a camera-to-world 4x4 in the OpenGL convention (x right, y up, looking down -z),
the same as the posed dataset and the radiance field, so a renderer needs no conversion.
Intrinsics and pixel rays follow ``scene_builder.camera``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scene_builder.camera import fov_intrinsics, local_directions

# The state vector, in order; lengths are divided by the scene's arena size, except the route
# offset, in vehicle widths: on a 180 m street a 1 m drift is 0.005 arena sizes, too small a
# signal to learn lane keeping from.
STATE_FIELDS = (
    "target_x",  # where to head (goal, or route look-ahead point) in the vehicle frame
    "target_y",
    "goal_distance",  # straight-line distance to the goal
    "target_bearing_cos",  # direction of the target relative to the heading
    "target_bearing_sin",
    "speed",  # forward speed / max speed
    "yaw_rate",  # yaw rate / max yaw rate
    "steer",  # steering angle / max steer (0 for diffdrive)
    "goal_frame_x",  # vehicle position relative to the goal (world axes)
    "goal_frame_y",
    "heading_cos",  # vehicle heading in the world
    "heading_sin",
    "completion",  # route completion / distance closed, in [0, 1]
    "time",  # elapsed fraction of max_episode_steps
    "route_offset",  # signed distance from the route (left positive), in vehicle widths
    "route_heading_cos",  # heading relative to the route's direction at the nearest point
    "route_heading_sin",
    "route_turn",  # the route's change of direction over the road ahead, radians
)
STATE_LIMIT = 5.0  # state entries are clipped to [-5, 5]


@dataclass(frozen=True)
class CameraModel:
    """A pinhole camera of ``width`` x ``height`` pixels mounted on the vehicle."""

    width: int
    height: int
    fov_deg: float  # horizontal
    forward_offset: float  # metres ahead of the body centre
    mount_height: float  # metres above the ground
    pitch_deg: float  # downward tilt

    @property
    def intrinsics(self) -> np.ndarray:
        """(fx, fy, cx, cy) in pixels."""
        return fov_intrinsics(self.width, self.height, self.fov_deg)

    def ray_directions(self) -> np.ndarray:
        """(H*W, 3) camera-frame ray directions with z = -1, so ray length t is z-depth."""
        return local_directions(self.intrinsics, self.width, self.height)

    def camera_to_world(self, x: float, y: float, yaw: float) -> np.ndarray:
        """The 4x4 OpenGL camera-to-world pose for a vehicle at ground pose (x, y, yaw)."""
        c, s = math.cos(yaw), math.sin(yaw)
        cp, sp = math.cos(math.radians(self.pitch_deg)), math.sin(math.radians(self.pitch_deg))
        # columns: camera x = the vehicle's right; camera y = up tilted forward by the pitch;
        # camera z = minus the viewing direction (forward tilted down by the pitch)
        pose = np.array(
            [
                [s, sp * c, -cp * c, x + self.forward_offset * c],
                [-c, sp * s, -cp * s, y + self.forward_offset * s],
                [0.0, cp, sp, self.mount_height],
                [0.0, 0.0, 0.0, 1.0],
            ]
        )
        return pose


def state_vector(
    vehicle_xy: tuple[float, float],
    yaw: float,
    speed: float,
    yaw_rate: float,
    steer: float,
    target_xy: np.ndarray,
    goal_xy: np.ndarray,
    completion: float,
    time_fraction: float,
    spec,  # simulator.vehicles.VehicleSpec
    arena_size: float,
    route,  # simulator.tasks.RouteFrame
) -> np.ndarray:
    """The ``state`` observation (see ``STATE_FIELDS``), float32, clipped to [-5, 5]."""
    x, y = vehicle_xy
    c, s = math.cos(yaw), math.sin(yaw)
    dx, dy = target_xy[0] - x, target_xy[1] - y
    local_x, local_y = c * dx + s * dy, -s * dx + c * dy
    bearing = math.atan2(local_y, local_x)
    gx, gy = x - goal_xy[0], y - goal_xy[1]
    values = (
        local_x / arena_size,
        local_y / arena_size,
        math.hypot(gx, gy) / arena_size,
        math.cos(bearing),
        math.sin(bearing),
        speed / spec.max_speed,
        yaw_rate / spec.max_yaw_rate,
        steer / spec.max_steer if spec.max_steer > 0 else 0.0,
        gx / arena_size,
        gy / arena_size,
        c,
        s,
        completion,
        time_fraction,
        route.offset / spec.width,
        math.cos(route.heading_error),
        math.sin(route.heading_error),
        route.turn_ahead,
    )
    return np.clip(np.array(values, dtype=np.float32), -STATE_LIMIT, STATE_LIMIT)
