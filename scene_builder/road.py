"""The road of a forward capture: its drivable map, the recorded route, its driving tasks and the
numbers that say how well the map covers the route.

Drivable map (``road_drivable_map``), per cell of the region's grid:

- the corridor the capture drove through (half the car's width and 0.3 m each side of the
  camera path) is drivable by construction: the camera went there;
- beyond it a cell is added when the collision surface under it is the ground (rays cast down
  from the car's height plus 0.5 m at the cell's centre and four corners all meet the ground
  profile within the ground tolerance first: no obstacle a car would hit), it lies within the
  road width of the path, its baked colour is the road's (within four median absolute deviations,
  per channel, of the corridor's colours, and at least 0.08), and it is connected to the corridor.

What it gets wrong: a kerb lower than the ground tolerance and a pavement the colour of the road
are taken as road; a parked car the field did not reconstruct (it is unsure there, so the ground
prior wins) is taken as road; the width is capped at the road width, so a wide square is cut.

The recorded route is the camera path resampled every 0.5 m; tasks are sections of it
(``road_tasks``): spawn on the route with the yaw along it, the goal further along, the route
the recorded path in between.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from scene_builder.drivable import DrivableMap, Goal, Pose2D
from scene_builder.errors import MeshError
from scene_builder.geometry.ground import RoadPrior
from scene_builder.geometry.road_fusion import config_ground_tolerance, corridor_width, road_width
from scene_builder.raycast import MeshCaster

ROUTE_SPACING = 0.5  # metres between the recorded route's samples
COLOUR_MADS = 4.0
MIN_COLOUR_SPREAD = 0.08
# A route shorter than this many car lengths is no route to drive.
MIN_ROUTE_CARS = 3.0


def recorded_route(prior: RoadPrior) -> np.ndarray:
    """The camera path on the ground, resampled every ``ROUTE_SPACING`` metres (K, 2)."""
    return prior.profile.resampled(ROUTE_SPACING * prior.metre)


def road_drivable_map(collision, visual, prior: RoadPrior, region, config, stats=None):
    """The road's drivable map (module docstring); ``stats`` gets its numbers."""
    resolution = config.map_resolution or 0.25 * prior.metre
    cells = int(np.ceil(2 * region.radius / resolution))
    origin = region.centre - cells * resolution / 2
    blank = DrivableMap(np.zeros((cells, cells), bool), origin, resolution)
    xy = blank.cell_centres(*np.indices(blank.shape)).reshape(-1, 2)
    distance = prior.profile.distance(xy)
    corridor = distance <= corridor_width(prior)
    near = distance <= road_width(prior, config)
    ground, colour = _surface(collision, visual, prior, xy[near], resolution, config)
    road_colour = _colour_match(colour, corridor[near] & ground)
    grid = np.zeros(len(xy), bool)
    grid[np.flatnonzero(near)[ground & road_colour]] = True
    grid = grid.reshape(blank.shape) | corridor.reshape(blank.shape)
    grid = ndimage.binary_closing(grid, iterations=1) & near.reshape(blank.shape)
    labels, _ = ndimage.label(grid)
    keep = np.unique(labels[corridor.reshape(blank.shape)])
    grid = np.isin(labels, keep[keep > 0])
    drivable = DrivableMap(grid, origin, resolution)
    if stats is not None:
        stats.update(road_numbers(drivable, prior))
    return drivable


def _surface(collision, visual, prior: RoadPrior, xy, resolution: float, config):
    """Per cell: whether every ray down from above the car meets the ground first, and the
    colour of the surface under the cell's centre."""
    if len(xy) == 0:
        return np.zeros(0, bool), np.zeros((0, 3))
    caster = MeshCaster.from_trimesh(collision)
    ground_z = prior.profile.height(xy)
    start = ground_z + prior.vehicle_size()["vehicle_height"] + 0.5 * prior.metre
    offsets = 0.5 * resolution * np.array([[0, 0], [-1, -1], [-1, 1], [1, -1], [1, 1]])
    rays = np.zeros((len(xy), len(offsets), 6), np.float32)
    rays[..., :2] = xy[:, None] + offsets
    rays[..., 2] = start[:, None]
    rays[..., 5] = -1.0
    top = start[:, None] - caster.cast(rays).t_hit
    tolerance = config_ground_tolerance(prior, config)
    ground = (np.abs(top - ground_z[:, None]) <= tolerance).all(axis=1)
    painter = MeshCaster.from_trimesh(visual, colours=True)
    colour = painter.colours(painter.cast(rays[:, 0]), background=(0.0, 0.0, 0.0))
    return ground, colour


def _colour_match(colour: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cells whose colour is within ``COLOUR_MADS`` median absolute deviations of the reference
    cells' median, per channel (all cells when there is no reference)."""
    if reference.sum() < 3:
        return np.ones(len(colour), bool)
    median = np.median(colour[reference], axis=0)
    spread = np.median(np.abs(colour[reference] - median), axis=0)
    limit = np.maximum(COLOUR_MADS * spread, MIN_COLOUR_SPREAD)
    return (np.abs(colour - median) <= limit).all(axis=1)


def road_numbers(drivable: DrivableMap, prior: RoadPrior) -> dict[str, Any]:
    """How the map covers the recorded route: the share of route samples on drivable cells, and
    the drivable width square to the route at each sample (median and minimum, world units)."""
    route = recorded_route(prior)
    covered = drivable.is_drivable(route)
    tangent = np.gradient(route, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    step = 0.5 * drivable.resolution
    reach = np.arange(step, 30 * prior.metre, step)
    widths = np.zeros(len(route))
    for sign in (-1.0, 1.0):
        probes = route[:, None] + sign * reach[None, :, None] * normal[:, None]
        inside = drivable.is_drivable(probes)
        run = np.argmin(np.concatenate([inside, np.zeros((len(route), 1), bool)], 1), axis=1)
        widths += run * step
    widths = np.where(covered, widths + step, 0.0)
    return {
        "route_length": float(prior.profile.length),
        "route_covered": float(covered.mean()),
        "width_median": float(np.median(widths)),
        "width_min": float(widths.min()),
        "drivable_share": float(drivable.grid.mean()),
    }


def road_tasks(
    drivable: DrivableMap,
    prior: RoadPrior,
    count: int,
    seed: int = 0,
    goal_radius: float | None = None,
) -> tuple[list[Pose2D], list[Goal], list[np.ndarray]]:
    """``count`` sections of the recorded route (module docstring), evenly spread along it with
    a seeded jitter; each goal half the route's length (at most 60 m) past its spawn."""
    route = recorded_route(prior)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(route, axis=0), axis=1))])
    car = prior.vehicle_size()["vehicle_length"]
    if arc[-1] < MIN_ROUTE_CARS * car:
        raise MeshError(
            f"the camera path is {arc[-1]:.1f} m long, under {MIN_ROUTE_CARS:.0f} car lengths: "
            "no route to drive (film a longer stretch of road, or check --scale)"
        )
    on_map = drivable.is_drivable(route)
    if not on_map.all():
        raise MeshError(f"{(~on_map).sum()} of {len(route)} recorded route samples off the map")
    section = min(0.5 * arc[-1], 60.0 * prior.metre)
    rng = np.random.default_rng(seed)
    room = arc[-1] - section
    starts = np.linspace(0.0, room, count) + rng.uniform(-0.5, 0.5, count) * room / max(count, 1)
    starts = np.clip(starts, 0.0, room)
    radius = goal_radius or 1.5 * prior.metre
    spawns, goals, routes = [], [], []
    for start in starts:
        end = start + section
        inner = (arc > start) & (arc < end)
        begin, finish = (_point_at(route, arc, s) for s in (start, end))
        path = np.concatenate([[begin], route[inner], [finish]])
        heading = path[1] - path[0]
        yaw = float(np.arctan2(heading[1], heading[0]))
        spawns.append(Pose2D(float(begin[0]), float(begin[1]), yaw))
        goals.append(Goal(float(finish[0]), float(finish[1]), float(radius)))
        routes.append(path)
    return spawns, goals, routes


def _point_at(route: np.ndarray, arc: np.ndarray, where: float) -> np.ndarray:
    return np.array([np.interp(where, arc, route[:, k]) for k in range(2)])
