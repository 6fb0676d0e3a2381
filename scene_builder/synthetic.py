"""Small synthetic scene bundles, no radiance field: a table-top plate, and a street.

``make_synthetic_scene``: a textured table-top plate with a few boxes.
It has the scale of the shipped bird scene (a table about 1.2 m x 0.9 m, objects about 10 cm
tall: a small robot's arena), so simulator and agent tests run on the same numbers as the real
scene without training a field. The plate's top is the ground (z = 0); its edges are cliffs, so
the drivable map ends there; the boxes are obstacles blocked in the map.

``make_synthetic_road``: a curved two-lane street with kerbs, sidewalks, parked cars and
buildings (``SyntheticRoadConfig``), a road scene by the same contract as a street capture's
bundle, for the simulator's route task, lane metrics and road car without a capture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from common.polyline import Polyline
from scene_builder.bundle import DEFAULT_LIGHTING, write_scene
from scene_builder.drivable import DrivableMap, Goal, Pose2D, sample_tasks


@dataclass(frozen=True)
class SyntheticConfig:
    """Sizes in metres."""

    plate_size: tuple[float, float] = (1.2, 0.9)
    plate_thickness: float = 0.04
    texture_cell: float = 0.02  # spacing of the coloured vertices on the plate top
    box_count: int = 4
    box_size_range: tuple[float, float] = (0.06, 0.14)
    box_height_range: tuple[float, float] = (0.06, 0.12)
    map_resolution: float = 0.01
    map_margin: float = 0.1  # undrivable border around the plate in the map
    task_count: int = 8
    task_clearance: float = 0.06  # room kept around spawns, goals and routes
    goal_radius: float = 0.05
    min_task_distance: float = 0.4
    vehicle_length: float = 0.1  # the recommended vehicle size, stored in the bundle's extras


def _plate(config: SyntheticConfig, rng: np.random.Generator) -> trimesh.Trimesh:
    """The plate: a finely gridded, wood-and-tile coloured top at z = 0 plus plain sides."""
    sx, sy = config.plate_size
    nx = int(round(sx / config.texture_cell))
    ny = int(round(sy / config.texture_cell))
    xs = np.linspace(-sx / 2, sx / 2, nx + 1)
    ys = np.linspace(-sy / 2, sy / 2, ny + 1)
    gx, gy = np.meshgrid(xs, ys)
    top_vertices = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], axis=1)
    ids = np.arange(gx.size).reshape(ny + 1, nx + 1)
    a, b, c, d = ids[:-1, :-1], ids[:-1, 1:], ids[1:, 1:], ids[1:, :-1]
    faces = np.concatenate(
        [np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)]
    )
    # Texture: wood-like grain plus a 10 cm tile pattern and per-vertex noise, so that camera
    # images carry motion cues everywhere on the ground.
    grain = 0.5 + 0.5 * np.sin(gx.ravel() * 40 + 3 * np.sin(gy.ravel() * 9))
    tiles = ((np.floor(gx.ravel() / 0.1) + np.floor(gy.ravel() / 0.1)) % 2).astype(float)
    base = np.array([0.72, 0.56, 0.40])
    shade = 0.85 + 0.1 * grain[:, None] - 0.12 * tiles[:, None]
    colours = base * shade + rng.normal(0, 0.03, size=(gx.size, 3))
    top = trimesh.Trimesh(top_vertices, faces, process=False)
    top.visual.vertex_colors = _rgba(colours)

    body = trimesh.creation.box(extents=(sx, sy, config.plate_thickness))
    body.apply_translation((0, 0, -config.plate_thickness / 2 - 1e-4))  # just under the top
    body.visual.vertex_colors = _rgba(np.tile([0.45, 0.33, 0.22], (len(body.vertices), 1)))
    return trimesh.util.concatenate([top, body])


def _rgba(colours: np.ndarray) -> np.ndarray:
    rgb = np.clip(np.asarray(colours) * 255, 0, 255).astype(np.uint8)
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


@dataclass(frozen=True)
class _Box:
    centre: np.ndarray  # (2,) x, y
    size: np.ndarray  # (2,) extents along its own x and y
    height: float
    yaw: float
    base: float = 0.0  # height of the ground it stands on

    def mesh(self, colour: np.ndarray) -> trimesh.Trimesh:
        box = trimesh.creation.box(extents=(self.size[0], self.size[1], self.height))
        box.apply_transform(trimesh.transformations.rotation_matrix(self.yaw, (0, 0, 1)))
        box.apply_translation((self.centre[0], self.centre[1], self.base + self.height / 2))
        box.visual.vertex_colors = _rgba(np.tile(colour, (len(box.vertices), 1)))
        return box

    def covers(self, xy: np.ndarray, margin: float) -> np.ndarray:
        """Whether points (..., 2) lie within ``margin`` of the box's footprint (a square test)."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        local = (xy - self.centre) @ np.array([[c, -s], [s, c]])
        return np.all(np.abs(local) <= self.size / 2 + margin, axis=-1)


def _boxes(config: SyntheticConfig, rng: np.random.Generator) -> list[_Box]:
    """Non-overlapping boxes on the plate, at least 15 cm from its edges."""
    half = np.array(config.plate_size) / 2
    boxes: list[_Box] = []
    while len(boxes) < config.box_count:
        box = _Box(
            centre=rng.uniform(-half + 0.15, half - 0.15),
            size=rng.uniform(*config.box_size_range, size=2),
            height=float(rng.uniform(*config.box_height_range)),
            yaw=float(rng.uniform(0, np.pi)),
        )
        if all(np.linalg.norm(box.centre - other.centre) >= 0.25 for other in boxes):
            boxes.append(box)
    return boxes


def _drivable_map(config: SyntheticConfig, boxes: list[_Box]) -> DrivableMap:
    """Cells whose centre is on the plate and whose cell touches no box's footprint."""
    res = config.map_resolution
    half = np.array(config.plate_size) / 2
    origin = -half - config.map_margin
    shape = np.ceil((2 * half + 2 * config.map_margin) / res).astype(int)
    empty = DrivableMap(np.zeros((shape[1], shape[0]), bool), origin, res)
    centres = empty.cell_centres(*np.indices(empty.shape))
    grid = np.all(np.abs(centres) <= half, axis=-1)
    for box in boxes:
        grid &= ~box.covers(centres, margin=res / 2)
    return DrivableMap(grid, origin, res)


def make_synthetic_scene(
    out_dir: str | Path,
    seed: int = 0,
    config: SyntheticConfig | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic bundle (see the module docstring) to ``out_dir``; returns its path.

    The same ``seed`` gives the same boxes, texture noise, spawns, goals and routes.
    """
    config = config or SyntheticConfig()
    rng = np.random.default_rng(seed)
    plate = _plate(config, rng)
    boxes = _boxes(config, rng)
    palette = np.array([(0.8, 0.15, 0.1), (0.1, 0.3, 0.8), (0.15, 0.6, 0.2), (0.9, 0.75, 0.1)])
    box_meshes = [box.mesh(palette[i % len(palette)]) for i, box in enumerate(boxes)]
    visual = trimesh.util.concatenate([plate, *box_meshes])
    collision = trimesh.Trimesh(visual.vertices.copy(), visual.faces.copy(), process=False)
    drivable = _drivable_map(config, boxes)
    spawns, goals, routes = sample_tasks(
        drivable,
        config.task_count,
        seed=seed,
        clearance=config.task_clearance,
        goal_radius=config.goal_radius,
        min_distance=config.min_task_distance,
    )
    write_scene(
        out_dir,
        name=f"synthetic-{seed}",
        collision_mesh=collision,
        visual_mesh=visual,
        drivable=drivable,
        spawns=spawns,
        goals=goals,
        routes=routes,
        lighting=DEFAULT_LIGHTING,
        arena_size=float(np.hypot(*config.plate_size)),
        extras={"synthetic": True, "seed": seed, "vehicle_length": config.vehicle_length},
        overwrite=overwrite,
    )
    return Path(out_dir)


# --- a synthetic street -------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticRoadConfig:
    """A two-lane street with a parking strip, kerbs, sidewalks and buildings; metres.

    Cross-section, by signed lateral offset from the road's centre line (positive = left):
    the right lane [-2.5, 0], the left lane [0, 2.5], a parking strip [2.5, 4.5] with parked
    cars, raised sidewalks out to 7.5 on both sides, grass, then buildings from 9 m out. The
    recorded route (the "capture camera's" path) runs down the middle of the right lane.
    """

    straight: float = 25.0  # straight before and after the bend
    bend_radius: float = 30.0
    bend_angle_deg: float = 90.0  # a left bend
    road_half_width: float = 4.5
    lane_width: float = 2.5
    sidewalk_width: float = 3.0
    kerb_height: float = 0.15
    route_offset: float = -1.25  # the recorded route, in the middle of the right lane
    parked_spacing: float = 11.0  # metres between parked cars (some slots stay empty)
    building_setback: float = 9.0
    ground_cell: float = 0.5  # spacing of the coloured ground vertices
    map_resolution: float = 0.25
    task_count: int = 8
    task_length: float = 40.0
    goal_radius: float = 2.0
    camera_height: float = 1.5
    grade: float = 0.0  # the road climbs this many metres per metre along it (0.05: 5 %)


def _centre_line(config: SyntheticRoadConfig) -> np.ndarray:
    """The road's centre line (N, 2): straight along +x, a left bend, straight again."""
    step = 0.25
    along = np.arange(0.0, config.straight, step)
    first = np.stack([along, np.zeros_like(along)], axis=1)
    angle = np.radians(config.bend_angle_deg)
    theta = np.arange(0.0, angle, step / config.bend_radius)
    r = config.bend_radius
    bend = np.stack([config.straight + r * np.sin(theta), r - r * np.cos(theta)], axis=1)
    end = np.array([config.straight + r * np.sin(angle), r - r * np.cos(angle)])
    heading = np.array([np.cos(angle), np.sin(angle)])
    last = end + np.arange(0.0, config.straight + step / 2, step)[:, None] * heading
    return np.vstack([first, bend, last])


def _road_frame(centre: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(arc, signed lateral offset) of points ``xy`` (..., 2) relative to the dense centre line."""
    tangents = np.gradient(centre, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(centre, axis=0), axis=1))])
    _, index = cKDTree(centre).query(xy.reshape(-1, 2))
    offset = xy.reshape(-1, 2) - centre[index]
    along = (offset * tangents[index]).sum(axis=1)
    lateral = tangents[index, 0] * offset[:, 1] - tangents[index, 1] * offset[:, 0]
    shape = xy.shape[:-1]
    return (arc[index] + along).reshape(shape), lateral.reshape(shape)


def _road_colours(config: SyntheticRoadConfig, s: np.ndarray, d: np.ndarray, rng) -> np.ndarray:
    """Asphalt with lane lines, kerb stones, tiled sidewalks and grass, with noise everywhere."""
    half = 0.5 * config.ground_cell  # lines one vertex spacing wide, so every row shows them
    colours = np.tile([0.32, 0.32, 0.34], (d.size, 1))
    dashed = (np.abs(d) < half) & (np.mod(s, 6.0) < 3.0)
    edges = np.abs(np.abs(d) - config.lane_width) < half
    colours[dashed | edges] = (0.92, 0.92, 0.88)
    kerb = config.road_half_width
    walk = (np.abs(d) > kerb) & (np.abs(d) <= kerb + config.sidewalk_width)
    tiles = (np.floor(s / 1.0) + np.floor(d / 1.0)) % 2
    colours[walk] = np.array([0.66, 0.63, 0.58]) * (0.92 + 0.08 * tiles[walk, None])
    colours[np.abs(np.abs(d) - kerb) < half] = (0.8, 0.78, 0.74)
    colours[np.abs(d) > kerb + config.sidewalk_width] = (0.3, 0.52, 0.22)
    return colours + rng.normal(0.0, 0.03, size=colours.shape)


def _road_ground(config: SyntheticRoadConfig, centre: np.ndarray, rng) -> trimesh.Trimesh:
    """The ground as a coloured height grid: the road at z = 0, sidewalks and verges on kerbs."""
    margin = config.building_setback + 12.0
    low, high = centre.min(axis=0) - margin, centre.max(axis=0) + margin
    xs = np.arange(low[0], high[0] + config.ground_cell, config.ground_cell)
    ys = np.arange(low[1], high[1] + config.ground_cell, config.ground_cell)
    gx, gy = np.meshgrid(xs, ys)
    s, d = _road_frame(centre, np.stack([gx, gy], axis=-1))
    s, d = s.ravel(), d.ravel()
    z = np.where(np.abs(d) > config.road_half_width, config.kerb_height, 0.0) + _rise(config, s)
    ids = np.arange(gx.size).reshape(gx.shape)
    a, b, c, e = ids[:-1, :-1], ids[:-1, 1:], ids[1:, 1:], ids[1:, :-1]
    faces = np.concatenate(
        [np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, e], -1).reshape(-1, 3)]
    )
    ground = trimesh.Trimesh(np.stack([gx.ravel(), gy.ravel(), z], axis=1), faces, process=False)
    ground.visual.vertex_colors = _rgba(_road_colours(config, s, d, rng))
    return ground


def _rise(config: SyntheticRoadConfig, arc):
    """Ground height at ``arc`` metres along the road (its grade; flat before its start)."""
    return config.grade * np.maximum(arc, 0.0)


def _along_road(centre: np.ndarray, arcs: np.ndarray, lateral: float):
    """Points at ``arcs`` along the centre line, ``lateral`` metres to its left, and headings."""
    line = Polyline(centre)
    points, yaws = [], []
    for arc in arcs:
        point, tangent = line.at(arc)
        points.append(point + lateral * np.array([-tangent[1], tangent[0]]))
        yaws.append(float(np.arctan2(tangent[1], tangent[0])))
    return np.array(points), np.array(yaws)


def _road_obstacles(config: SyntheticRoadConfig, centre: np.ndarray, rng) -> tuple[list, list]:
    """(parked cars, buildings) as boxes beside the road."""
    length = Polyline(centre).length
    slots = np.arange(6.0, length - 6.0, config.parked_spacing)
    slots = slots[rng.random(len(slots)) < 0.7]
    lateral = 0.5 * (config.lane_width + config.road_half_width)
    points, yaws = _along_road(centre, slots, lateral)
    cars = [
        _Box(p, np.array([4.5, 1.8]), 1.5, y, float(_rise(config, arc)))
        for p, y, arc in zip(points, yaws, slots, strict=True)
    ]
    buildings = []
    for side in (1.0, -1.0):
        depth = 6.0
        arcs = np.arange(4.0, length - 4.0, 13.0)
        points, yaws = _along_road(centre, arcs, side * (config.building_setback + depth / 2))
        for p, y, arc in zip(points, yaws, arcs, strict=True):
            size = np.array([rng.uniform(8.0, 11.0), depth])
            base = float(_rise(config, arc)) - 2.0  # sunk in, so a slope leaves no gap under it
            buildings.append(_Box(p, size, float(rng.uniform(6.0, 14.0)) + 2.0, y, base))
    return cars, buildings


def _road_drivable(config: SyntheticRoadConfig, centre: np.ndarray, cars: list) -> DrivableMap:
    """The carriageway between the kerbs, minus the parked cars, over the road's length."""
    res = config.map_resolution
    margin = config.road_half_width + 2.0
    origin = centre.min(axis=0) - margin
    shape = np.ceil((centre.max(axis=0) + margin - origin) / res).astype(int)
    empty = DrivableMap(np.zeros((shape[1], shape[0]), bool), origin, res)
    centres = empty.cell_centres(*np.indices(empty.shape))
    s, d = _road_frame(centre, centres)
    total = float(np.linalg.norm(np.diff(centre, axis=0), axis=1).sum())
    grid = (np.abs(d) <= config.road_half_width - res / 2) & (s >= 0.0) & (s <= total)
    for car in cars:
        grid &= ~car.covers(centres, margin=res / 2)
    return DrivableMap(grid, origin, res)


def _recorded_route(config: SyntheticRoadConfig, centre: np.ndarray) -> np.ndarray:
    """The "capture camera's" path: the middle of the right lane, a point every 0.5 m, starting
    and ending a car length inside the road's ends, so a car fits at either end."""
    arcs = np.arange(5.0, Polyline(centre).length - 5.0, 0.5)
    return _along_road(centre, arcs, config.route_offset)[0]


def _route_sections(route: np.ndarray, config: SyntheticRoadConfig):
    """``task_count`` sections of the recorded route, ``task_length`` long, evenly staggered."""
    line = Polyline(route)
    length = min(config.task_length, line.length)
    spawns, goals, routes = [], [], []
    for start in np.linspace(0.0, line.length - length, config.task_count):
        section = line.section(start, start + length)
        heading = section[1] - section[0]
        spawns.append(Pose2D(*section[0], float(np.arctan2(heading[1], heading[0]))))
        goals.append(Goal(*section[-1], config.goal_radius))
        routes.append(section)
    return spawns, goals, routes


def make_synthetic_road(
    out_dir: str | Path,
    seed: int = 0,
    config: SyntheticRoadConfig | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic street bundle (``SyntheticRoadConfig``) to ``out_dir``; returns its path.

    It follows the road-scene contract of ``scene_builder`` (``extras``: ``scene_kind`` "road",
    the ``recorded_route`` at 0.5 m spacing, ``camera_height`` and a 4.5 x 1.8 x 1.5 m car), and
    its spawns, goals and routes are sections of the recorded route, so the simulator's route
    task, lane metrics and expert run on it without a capture.
    """
    config = config or SyntheticRoadConfig()
    rng = np.random.default_rng(seed)
    centre = _centre_line(config)
    cars, buildings = _road_obstacles(config, centre, rng)
    ground = _road_ground(config, centre, rng)
    facades = rng.uniform(0.35, 0.85, size=(len(buildings), 3))
    meshes = [ground]
    meshes += [car.mesh(np.array([0.75, 0.12, 0.1])) for car in cars]
    meshes += [b.mesh(c) for b, c in zip(buildings, facades, strict=True)]
    visual = trimesh.util.concatenate(meshes)
    collision = trimesh.Trimesh(visual.vertices.copy(), visual.faces.copy(), process=False)
    drivable = _road_drivable(config, centre, cars)
    route = _recorded_route(config, centre)
    spawns, goals, routes = _route_sections(route, config)
    write_scene(
        out_dir,
        name=f"synthetic-road-{seed}",
        collision_mesh=collision,
        visual_mesh=visual,
        drivable=drivable,
        spawns=spawns,
        goals=goals,
        routes=routes,
        lighting=DEFAULT_LIGHTING,
        extras={
            "synthetic": True,
            "seed": seed,
            "scene_kind": "road",
            "recorded_route": np.round(route, 4).tolist(),
            "camera_height": config.camera_height,
            "vehicle_length": 4.5,
            "vehicle_width": 1.8,
            "vehicle_height": 1.5,
        },
        overwrite=overwrite,
    )
    return Path(out_dir)
