"""The top-down drivable-area map, a shortest-path planner over it, and spawn/goal/route sampling.

A ``DrivableMap`` is a boolean grid in the world's x-y plane: ``grid[row, col]`` covers
``x in origin_x + col * res + [0, res)`` and ``y in origin_y + row * res + [0, res)``. True means
"ground a vehicle can drive on"; everything outside the grid is not drivable (a table's edge is a
cliff, not free space). ``drivable_from_mesh`` builds one from a scene's collision mesh by ray
casting straight down.

The planner is Dijkstra over the 8-connected grid with scipy's compiled ``csgraph.dijkstra``
(a few ms for a 200 x 200 map), after eroding the map by the requested clearance with an exact
Euclidean distance transform (``scipy.ndimage``); no path library does grids better on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from scene_builder.errors import SceneBuilderError
from scene_builder.raycast import MeshCaster


class NoPathError(SceneBuilderError):
    """No drivable path joins two points, or a point is not on drivable ground."""


@dataclass(frozen=True)
class Pose2D:
    """A vehicle pose on the ground: position in metres, yaw in radians about +z (0 along +x)."""

    x: float
    y: float
    yaw: float

    def to_list(self) -> list[float]:
        return [float(self.x), float(self.y), float(self.yaw)]


@dataclass(frozen=True)
class Goal:
    """A goal region: a disc of ``radius`` metres around (x, y)."""

    x: float
    y: float
    radius: float

    def to_list(self) -> list[float]:
        return [float(self.x), float(self.y), float(self.radius)]


@dataclass
class DrivableMap:
    """A top-down boolean grid of drivable ground (see the module docstring for its axes)."""

    grid: np.ndarray  # (H, W) bool, row = y index, col = x index
    origin_xy: np.ndarray  # (2,) world x, y of the outer corner of cell (0, 0)
    resolution: float  # metres per cell

    def __post_init__(self) -> None:
        self.grid = np.asarray(self.grid, dtype=bool)
        self.origin_xy = np.asarray(self.origin_xy, dtype=np.float64).reshape(2)
        self.resolution = float(self.resolution)
        if self.grid.ndim != 2 or self.resolution <= 0:
            raise ValueError("DrivableMap needs a 2-D grid and a positive resolution")

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(x_min, x_max, y_min, y_max) of the whole grid in metres."""
        h, w = self.grid.shape
        x0, y0 = self.origin_xy
        return (x0, x0 + w * self.resolution, y0, y0 + h * self.resolution)

    def drivable_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min_xy, max_xy) of the drivable cells' outer edges; raises if nothing is drivable."""
        rows, cols = np.nonzero(self.grid)
        if rows.size == 0:
            raise NoPathError("the drivable map has no drivable cell")
        low = self.origin_xy + np.array([cols.min(), rows.min()]) * self.resolution
        high = self.origin_xy + (np.array([cols.max(), rows.max()]) + 1) * self.resolution
        return low, high

    def to_cells(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer (row, col) of the cells holding points ``xy`` (..., 2); may be outside the grid."""
        xy = np.asarray(xy, dtype=np.float64)
        cell = np.floor((xy - self.origin_xy) / self.resolution).astype(np.int64)
        return cell[..., 1], cell[..., 0]

    def cell_centres(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """World x, y (..., 2) of the centres of cells (rows, cols)."""
        rows = np.asarray(rows, dtype=np.float64)
        cols = np.asarray(cols, dtype=np.float64)
        return self.origin_xy + (np.stack([cols, rows], axis=-1) + 0.5) * self.resolution

    def _lookup(self, grid: np.ndarray, xy: np.ndarray) -> np.ndarray:
        rows, cols = self.to_cells(xy)
        h, w = grid.shape
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        result = np.zeros(rows.shape, dtype=bool)
        result[inside] = grid[rows[inside], cols[inside]]
        return result

    def is_drivable(self, xy: np.ndarray) -> np.ndarray:
        """Whether each point of ``xy`` (..., 2) lies on a drivable cell; outside the grid is False."""
        return self._lookup(self.grid, xy)

    def drivable_at(self, x: float, y: float) -> bool:
        """``is_drivable`` for one point, without numpy's per-call overhead (the env's step loop)."""
        col = math.floor((x - self.origin_xy[0]) / self.resolution)
        row = math.floor((y - self.origin_xy[1]) / self.resolution)
        h, w = self.grid.shape
        return 0 <= row < h and 0 <= col < w and bool(self.grid[row, col])

    def clearance(self) -> np.ndarray:
        """Distance in metres from each cell centre to the nearest non-drivable cell or map edge."""
        padded = np.pad(self.grid, 1, constant_values=False)
        return ndimage.distance_transform_edt(padded)[1:-1, 1:-1] * self.resolution

    def free_with_clearance(self, clearance: float) -> np.ndarray:
        """The cells whose centre is more than ``clearance`` metres from any non-drivable cell.

        A cell adjacent to an obstacle has a distance of one cell, so ``clearance=0`` keeps every
        drivable cell.
        """
        if clearance <= 0:
            return self.grid.copy()
        return self.clearance() > clearance + 0.5 * self.resolution

    def shortest_path(
        self, start_xy: np.ndarray, goal_xy: np.ndarray, clearance: float = 0.0
    ) -> np.ndarray:
        """Waypoints (K, 2) from ``start_xy`` to ``goal_xy`` over drivable cells.

        Cells within ``clearance`` metres of a non-drivable cell are avoided, except that the
        start and goal cells are accepted as long as they are drivable. The first and last
        waypoints are the exact start and goal; the others are cell centres with collinear
        ones removed. Raises ``NoPathError`` if either point is not drivable or no path exists.
        """
        start_xy = np.asarray(start_xy, dtype=np.float64).reshape(2)
        goal_xy = np.asarray(goal_xy, dtype=np.float64).reshape(2)
        for name, point in (("start", start_xy), ("goal", goal_xy)):
            if not self.is_drivable(point):
                raise NoPathError(
                    f"{name} ({point[0]:.3f}, {point[1]:.3f}) is not on drivable ground"
                )
        allowed = self.free_with_clearance(clearance)
        (start_row, goal_row), (start_col, goal_col) = self.to_cells(np.stack([start_xy, goal_xy]))
        allowed[start_row, start_col] = allowed[goal_row, goal_col] = True
        h, w = allowed.shape
        graph = _grid_graph(allowed)
        start_id, goal_id = start_row * w + start_col, goal_row * w + goal_col
        distances, predecessors = csgraph.dijkstra(
            graph, directed=False, indices=start_id, return_predecessors=True
        )
        if not np.isfinite(distances[goal_id]):
            raise NoPathError(
                f"no drivable path from ({start_xy[0]:.3f}, {start_xy[1]:.3f}) to "
                f"({goal_xy[0]:.3f}, {goal_xy[1]:.3f}) with clearance {clearance} m"
            )
        chain = [goal_id]
        while chain[-1] != start_id:
            chain.append(predecessors[chain[-1]])
        cells = np.array(chain[::-1])
        centres = self.cell_centres(cells // w, cells % w)
        centres = _drop_collinear(centres)
        centres[0], centres[-1] = start_xy, goal_xy
        if len(centres) == 1:
            centres = np.stack([start_xy, goal_xy])
        return centres


def _grid_graph(allowed: np.ndarray) -> sparse.csr_matrix:
    """The 8-connected graph of allowed cells, edge weights in cells (1 or sqrt 2).

    A diagonal step is allowed only when both cells whose corner it cuts are allowed, so a
    path never squeezes between two obstacles that touch at a corner.
    """
    h, w = allowed.shape
    ids = np.arange(h * w).reshape(h, w)
    rows, cols, weights = [], [], []
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each undirected edge once
        r0, r1, c0, c1 = max(0, -dr), h - max(0, dr), max(0, -dc), w - max(0, dc)

        def shifted(a: int, b: int, r0=r0, r1=r1, c0=c0, c1=c1) -> np.ndarray:
            return allowed[r0 + a : r1 + a, c0 + b : c1 + b]

        ok = shifted(0, 0) & shifted(dr, dc)
        if dr and dc:
            ok &= shifted(dr, 0) & shifted(0, dc)
        src_ids = ids[r0:r1, c0:c1][ok]
        rows.append(src_ids)
        cols.append(src_ids + dr * w + dc)
        weights.append(np.full(src_ids.size, np.hypot(dr, dc)))
    return sparse.csr_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
        shape=(h * w, h * w),
    )


def _drop_collinear(points: np.ndarray) -> np.ndarray:
    """Keep the first, the last and every point where the path changes direction."""
    if len(points) <= 2:
        return points.copy()
    steps = np.diff(points, axis=0)
    turn = np.abs(steps[1:, 0] * steps[:-1, 1] - steps[1:, 1] * steps[:-1, 0]) > 1e-12
    keep = np.concatenate([[True], turn, [True]])
    return points[keep].copy()


def sample_free_points(
    drivable: DrivableMap, count: int, rng: np.random.Generator, clearance: float = 0.0
) -> np.ndarray:
    """``count`` points (count, 2) uniformly on cells with at least ``clearance`` metres of room."""
    allowed = drivable.free_with_clearance(clearance)
    rows, cols = np.nonzero(allowed)
    if rows.size == 0:
        raise NoPathError(f"no drivable cell has {clearance} m of clearance")
    pick = rng.integers(0, rows.size, size=count)
    jitter = rng.uniform(-0.5, 0.5, size=(count, 2)) * drivable.resolution
    return drivable.cell_centres(rows[pick], cols[pick]) + jitter


def sample_tasks(
    drivable: DrivableMap,
    count: int,
    seed: int = 0,
    clearance: float = 0.0,
    goal_radius: float = 0.05,
    min_distance: float = 0.0,
    attempts: int = 50,
) -> tuple[list[Pose2D], list[Goal], list[np.ndarray]]:
    """``count`` (spawn, goal, route) triples on free cells, reproducible from ``seed``.

    Each goal is at least ``min_distance`` metres from its spawn and reachable from it with the
    given clearance; the spawn faces the first leg of its route; the route is the planner's
    shortest path. Raises ``NoPathError`` if too few reachable pairs are found.
    """
    rng = np.random.default_rng(seed)
    spawns: list[Pose2D] = []
    goals: list[Goal] = []
    routes: list[np.ndarray] = []
    for _ in range(count * attempts):
        if len(spawns) == count:
            break
        start, goal = sample_free_points(drivable, 2, rng, clearance)
        if np.linalg.norm(goal - start) < min_distance:
            continue
        try:
            route = drivable.shortest_path(start, goal, clearance=clearance)
        except NoPathError:
            continue
        heading = route[1] - route[0]
        yaw = float(np.arctan2(heading[1], heading[0]))
        spawns.append(Pose2D(float(start[0]), float(start[1]), yaw))
        goals.append(Goal(float(goal[0]), float(goal[1]), float(goal_radius)))
        routes.append(route)
    if len(spawns) < count:
        raise NoPathError(
            f"found only {len(spawns)} of {count} reachable spawn/goal pairs "
            f"(clearance {clearance} m, min distance {min_distance} m)"
        )
    return spawns, goals, routes


def drivable_from_mesh(
    mesh,  # trimesh.Trimesh
    region,  # scene_builder.geometry.types.Region: centre, radius, top
    resolution: float,
    ground_tolerance: float,
    min_island_fraction: float = 0.05,
    stats: dict[str, Any] | None = None,
) -> DrivableMap:
    """The drivable map of ``mesh`` inside ``region`` (``scene_builder.mesh`` step 5).

    A cell is drivable when the first surface that rays cast straight down from above the region
    at its centre and its four corners meet is the ground. Anything above the ground blocks the
    cell, overhangs included: the conservative choice, since neither a TSDF surface (open under
    an object) nor an alpha shape (which may hold inner faces) says reliably whether a point is
    inside an object. The corners make an obstacle block every cell it reaches into (with the
    centre alone, cells under a bulging side stay drivable).
    ``stats``, when given, receives ``ground_level``: the median height of the ground found.
    """
    caster = MeshCaster.from_trimesh(mesh)
    cells = int(np.ceil(2 * region.radius / resolution))
    origin = region.centre - cells * resolution / 2
    blank = DrivableMap(np.zeros((cells, cells), bool), origin, resolution)
    xy = blank.cell_centres(*np.indices(blank.shape)).reshape(-1, 2)
    start = float(max(region.top, mesh.bounds[1, 2]) + 1.0)
    offsets = 0.5 * resolution * np.array([[0, 0], [-1, -1], [-1, 1], [1, -1], [1, 1]])
    samples = (xy[:, None] + offsets).reshape(-1, 2)
    rays = np.zeros((len(samples), 6), np.float32)
    rays[:, :2], rays[:, 2], rays[:, 5] = samples, start, -1.0
    top = start - caster.cast(rays).t_hit.reshape(len(xy), -1)
    # The reconstructed ground may sit a few millimetres off z = 0 (the alignment's plane fit);
    # classify heights relative to the ground actually found, and report the offset.
    near_zero = np.abs(top[:, 0]) <= 3 * ground_tolerance
    level = float(np.median(top[near_zero, 0])) if near_zero.any() else 0.0
    ground = (np.abs(top - level) <= ground_tolerance).all(axis=1)
    ground &= np.linalg.norm(xy - region.centre, axis=1) <= region.radius
    obstacle = (np.isfinite(top) & (top > level + ground_tolerance)).any(axis=1)
    obstacle = obstacle.reshape(blank.shape)
    grid = ground.reshape(blank.shape)
    if stats is not None:
        stats["ground_level"] = level
    # Close one-cell gaps in the ground (noise), never across an obstacle.
    grid |= ndimage.binary_closing(grid, iterations=1) & ~obstacle
    labels, found = ndimage.label(grid)
    if found > 1:
        sizes = np.bincount(labels.ravel())[1:]
        grid = np.isin(labels, 1 + np.nonzero(sizes >= min_island_fraction * sizes.max())[0])
    return DrivableMap(grid, origin, resolution)
