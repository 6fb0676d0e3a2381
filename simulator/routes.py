"""Routes on road scenes: sections of the recorded route, and spawns offset from a route.

A road scene's bundle carries the capture's camera path on the ground
(``extras["recorded_route"]``, see ``scene_builder``); its spawns, goals and routes are
sections of it. ``random_section`` draws a new section for ``spawn="random"`` (the length of the
bundle's own sections, anywhere along the recorded route), so both the route and the goal task
stay on the road ahead. ``offset_spawn`` moves a route task's spawn sideways and turns it, each
uniformly within the configured range, so that an agent must recover onto the route (the
perturbed starts of lane-keeping benchmarks); a draw is kept only when the vehicle's whole
footprint stands on drivable cells, otherwise another is drawn, and the route's own start is
the fallback.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from common.polyline import Polyline
from simulator.vehicles import VehicleSpec, is_road_scene

DEFAULT_LATERAL_OFFSET = 1.0  # metres, road scenes: a car's drift within a 3.5 m lane
DEFAULT_HEADING_OFFSET_DEG = 15.0  # degrees, road scenes
SPAWN_TRIES = 32
FALLBACK_SECTION_FRACTION = 0.5  # section length when the bundle has no routes of its own


def recorded_route(extras: dict[str, Any]) -> np.ndarray | None:
    """The recorded route (N, 2) of a road scene, or None (arena, or fewer than two points)."""
    if not is_road_scene(extras):
        return None
    route = np.asarray(extras.get("recorded_route") or [], dtype=np.float64).reshape(-1, 2)
    return route if len(route) >= 2 else None


def spawn_offsets(config, extras: dict[str, Any]) -> tuple[float, float]:
    """(lateral metres, heading radians) ranges of a route spawn: config, else road defaults."""
    road = is_road_scene(extras)
    lateral = config.route_lateral_offset
    heading = config.route_heading_offset_deg
    if lateral is None:
        lateral = DEFAULT_LATERAL_OFFSET if road else 0.0
    if heading is None:
        heading = DEFAULT_HEADING_OFFSET_DEG if road else 0.0
    return float(lateral), math.radians(float(heading))


def section_length(recorded: Polyline, routes: list[np.ndarray]) -> float:
    """The median length of the bundle's routes, or half the recorded route without any."""
    lengths = [Polyline(r).length for r in routes if len(r) >= 2]
    if lengths:
        return min(float(np.median(lengths)), recorded.length)
    return FALLBACK_SECTION_FRACTION * recorded.length


def random_section(
    recorded: np.ndarray, length: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spawn x, y, yaw on the route; goal x, y at its end; the section) starting anywhere."""
    line = Polyline(recorded)
    start = float(rng.uniform(0.0, max(line.length - length, 0.0)))
    section = line.section(start, start + length)
    _, tangent = line.at(start)
    spawn = np.array([*section[0], math.atan2(tangent[1], tangent[0])])
    return spawn, section[-1].copy(), section


def footprint_points(x: float, y: float, yaw: float, spec: VehicleSpec) -> np.ndarray:
    """A 5 x 3 grid of points (15, 2) over the vehicle's rectangle, corners included."""
    along = np.linspace(-0.5, 0.5, 5) * spec.length
    across = np.linspace(-0.5, 0.5, 3) * spec.width
    a, b = np.meshgrid(along, across)
    c, s = math.cos(yaw), math.sin(yaw)
    return np.stack([x + c * a - s * b, y + s * a + c * b], axis=-1).reshape(-1, 2)


def offset_spawn(
    route: np.ndarray,
    drivable,
    spec: VehicleSpec,
    lateral: float,
    heading: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A spawn (x, y, yaw) at the route's start, offset by up to ``lateral`` m and ``heading`` rad.

    Offsets are uniform in [-range, range]; a draw whose footprint leaves the drivable map is
    redrawn, up to ``SPAWN_TRIES`` times, then the route's start itself is returned.
    """
    point, tangent = Polyline(route).at(0.0)
    yaw = math.atan2(tangent[1], tangent[0])
    normal = np.array([-tangent[1], tangent[0]])
    if lateral <= 0 and heading <= 0:
        return np.array([*point, yaw])
    for _ in range(SPAWN_TRIES):
        xy = point + rng.uniform(-lateral, lateral) * normal
        turned = yaw + rng.uniform(-heading, heading)
        if drivable.is_drivable(footprint_points(xy[0], xy[1], turned, spec)).all():
            return np.array([xy[0], xy[1], turned])
    return np.array([*point, yaw])
