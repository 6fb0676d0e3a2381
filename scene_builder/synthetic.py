"""A small synthetic scene bundle: a textured table-top plate with a few boxes, no radiance field.

It has the scale of the shipped bird scene (a table about 1.2 m x 0.9 m, objects about 10 cm
tall: a small robot's arena), so simulator and agent tests run on the same numbers as the real
scene without training a field. The plate's top is the ground (z = 0); its edges are cliffs, so
the drivable map ends there; the boxes are obstacles blocked in the map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from scene_builder.bundle import DEFAULT_LIGHTING, write_scene
from scene_builder.drivable import DrivableMap, sample_tasks


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

    def mesh(self, colour: np.ndarray) -> trimesh.Trimesh:
        box = trimesh.creation.box(extents=(self.size[0], self.size[1], self.height))
        box.apply_transform(trimesh.transformations.rotation_matrix(self.yaw, (0, 0, 1)))
        box.apply_translation((self.centre[0], self.centre[1], self.height / 2))
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
