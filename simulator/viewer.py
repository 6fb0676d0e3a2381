"""Pictures of an episode: the camera view beside a top-down map with goal, route and trajectory.

Used by ``DriveEnv.render()`` (``render_mode="rgb_array"``, so gymnasium's ``RecordVideo``
works), ``driveenv rollout`` (video files, no display) and ``driveenv drive`` (a window).
Drawing is plain OpenCV on a numpy image: no display and no GUI library needed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

PANEL = 256  # pixels per side of each panel
FREE_COLOUR = (235, 235, 235)
BLOCKED_COLOUR = (70, 70, 70)
ROUTE_COLOUR = (60, 160, 60)
GOAL_COLOUR = (40, 180, 40)
TRAJECTORY_COLOUR = (30, 90, 220)
VEHICLE_COLOUR = (220, 40, 40)


class MapCanvas:
    """The drivable map drawn once, with a world -> pixel transform for overlays."""

    def __init__(self, drivable, size: int = PANEL) -> None:
        x0, x1, y0, y1 = drivable.extent
        self.scale = size / max(x1 - x0, y1 - y0)
        self.x0, self.y1, self.size = x0, y1, size
        grid = drivable.grid[::-1]  # row 0 = largest y, so +y is up in the picture
        h, w = grid.shape
        image = np.where(grid[..., None], FREE_COLOUR, BLOCKED_COLOUR).astype(np.uint8)
        drawn = cv2.resize(
            image,
            (
                max(1, round(w * drivable.resolution * self.scale)),
                max(1, round(h * drivable.resolution * self.scale)),
            ),
            interpolation=cv2.INTER_NEAREST,
        )
        self.background = np.full((size, size, 3), BLOCKED_COLOUR, dtype=np.uint8)
        self.background[: drawn.shape[0], : drawn.shape[1]] = drawn[:size, :size]

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        cols = (xy[:, 0] - self.x0) * self.scale
        rows = (self.y1 - xy[:, 1]) * self.scale
        return np.round(np.stack([cols, rows], axis=1)).astype(np.int32)

    def draw(self, route, goal_xy, goal_radius, trajectory, pose, vehicle_spec) -> np.ndarray:
        image = self.background.copy()
        if route is not None and len(route) > 1:
            cv2.polylines(image, [self.to_pixels(route)], False, ROUTE_COLOUR, 1, cv2.LINE_AA)
        centre = tuple(int(v) for v in self.to_pixels(goal_xy)[0])
        cv2.circle(image, centre, max(2, round(goal_radius * self.scale)), GOAL_COLOUR, 2)
        if len(trajectory) > 1:
            cv2.polylines(
                image, [self.to_pixels(trajectory)], False, TRAJECTORY_COLOUR, 2, cv2.LINE_AA
            )
        x, y, yaw = pose
        c, s = math.cos(yaw), math.sin(yaw)
        half_l, half_w = 0.5 * vehicle_spec.length, 0.5 * vehicle_spec.width
        corners = np.array(
            [[half_l, half_w], [half_l, -half_w], [-half_l, -half_w], [-half_l, half_w]]
        )
        world = corners @ np.array([[c, s], [-s, c]]) + (x, y)
        cv2.fillPoly(image, [self.to_pixels(world)], VEHICLE_COLOUR)
        return image


def compose_frame(env, camera_rgb: np.ndarray | None) -> np.ndarray:
    """An RGB frame: the camera view (if any) beside the top-down map of ``env``'s episode."""
    if env._map_canvas is None:
        env._map_canvas = MapCanvas(env.scene.drivable)
    task, vehicle = env.task, env.vehicle
    top_down = env._map_canvas.draw(
        task.route,
        task.goal_xy,
        task.goal_radius,
        env.trajectory,
        (vehicle.x, vehicle.y, vehicle.yaw),
        env.vehicle_spec,
    )
    panels = [top_down]
    if camera_rgb is not None:
        panels.insert(0, cv2.resize(camera_rgb, (PANEL, PANEL), interpolation=cv2.INTER_NEAREST))
    frame = np.concatenate(panels, axis=1)
    info = env._last_info
    status = (
        "success"
        if info.get("success")
        else "collision"
        if info.get("collision")
        else (
            "off road"
            if info.get("off_road")
            else f"{info.get('distance_to_goal', 0.0):.2f} m to goal"
        )
    )
    cv2.putText(
        frame, status, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA
    )
    return frame
