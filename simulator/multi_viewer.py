"""A top-down picture of a multi-robot episode: every robot's goal, trajectory and pose.

Each robot has its own colour; its goal is a circle, its trajectory a line and, while it is in
the scene, its body a filled box. Drawn with OpenCV on ``simulator.viewer.MapCanvas``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from simulator.viewer import MapCanvas

ROBOT_COLOURS = ((220, 40, 40), (40, 90, 220), (230, 150, 20), (150, 40, 200), (20, 170, 170))
MAP_SIZE = 384  # pixels per side


def draw_team(env) -> np.ndarray:
    """The RGB frame of ``env`` (a ``MultiDriveEnv``) now, with the team's score written on it."""
    canvas = getattr(env, "_team_canvas", None)
    if canvas is None:
        canvas = env._team_canvas = MapCanvas(env.scene.drivable, MAP_SIZE)
    image = canvas.background.copy()
    spec = env.spec
    for i, task in enumerate(env.tasks):
        colour = ROBOT_COLOURS[i % len(ROBOT_COLOURS)]
        centre = tuple(int(v) for v in canvas.to_pixels(task.goal_xy)[0])
        cv2.circle(image, centre, max(2, round(task.goal_radius * canvas.scale)), colour, 2)
        trajectory = np.asarray(env.trajectories[i])
        if len(trajectory) > 1:
            cv2.polylines(image, [canvas.to_pixels(trajectory)], False, colour, 2, cv2.LINE_AA)
        if env.present[i]:
            v = env.vehicles[i]
            c, s = math.cos(v.yaw), math.sin(v.yaw)
            half_l, half_w = 0.5 * spec.length, 0.5 * spec.width
            corners = np.array(
                [[half_l, half_w], [half_l, -half_w], [-half_l, -half_w], [-half_l, half_w]]
            )
            world = corners @ np.array([[c, s], [-s, c]]) + (v.x, v.y)
            cv2.fillPoly(image, [canvas.to_pixels(world)], colour)
    stats = env.episode_stats
    text = (
        f"step {stats.get('steps', 0)}  arrived {stats.get('arrived', 0)}/{env.count}"
        f"  robot collisions {stats.get('robot_collisions', 0)}"
    )
    cv2.putText(image, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
    return image
