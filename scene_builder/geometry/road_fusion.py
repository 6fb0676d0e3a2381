"""Geometry of a road scene: the region, extra views and ground prior along the camera path, and
the collision surface built from the fused mesh and the ground (``scene_builder.mesh``, road).

- Region: a disc around the camera path's bounding box, reaching ``road_margin`` metres beyond
  the path (an arena's disc is centred on an orbit centre, which a street does not have).
- Views: the training cameras, plus low side views along the path (``virtual_views`` places,
  looking 60 degrees left and right of the travel direction), so building fronts and parked cars
  beside the road are fused from more than the grazing forward views.
- Ground prior: a pixel whose ray meets the ground profile within ``road_width`` metres of the
  path fuses the ground's depth when its rendered surface is at or below the ground, or when the
  field is unsure there (not trusted); trusted surfaces above the ground keep the field's depth.
  A forward capture's field is least sure on the road itself: the road fills the lower half of
  every frame at a grazing angle, and its depth comes out as streaks.
- Collision: faces of the fused mesh that lie on the ground within the road width, and anything
  inside the corridor the camera drove through below the camera's height, are replaced by a
  ground sheet following the profile: the driven path is free by construction, the road surface
  continuous, and obstacles beside it stay where the field was sure of them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import trimesh

from scene_builder.camera import look_at, world_directions
from scene_builder.geometry.ground import RoadPrior
from scene_builder.geometry.trust import trusted_mask
from scene_builder.geometry.types import DepthView, Region

if TYPE_CHECKING:
    from scene_builder.mesh import MeshConfig

SIDE_YAW_DEG = 60.0
SIDE_PITCH_DEG = -10.0


def road_width(prior: RoadPrior, config: MeshConfig) -> float:
    """Half-width, world units, of the band along the path where the ground prior applies."""
    return config.road_width * prior.metre


def corridor_width(prior: RoadPrior) -> float:
    """Half-width of the corridor the capture drove through: half the car's width and 0.3 m."""
    return 0.5 * prior.vehicle_size()["vehicle_width"] + 0.3 * prior.metre


def road_region(prior: RoadPrior, poses: np.ndarray, config: MeshConfig) -> Region:
    """The disc around the camera path's bounding box, ``road_margin`` metres past the path
    (``region_radius``, when given, replaces the computed radius; the centre stays on the path)."""
    xy = prior.profile.path_xy
    centre = 0.5 * (xy.min(0) + xy.max(0))
    reach = float(np.linalg.norm(xy - centre, axis=1).max())
    radius = config.region_radius or reach + config.road_margin * prior.metre
    ground = prior.profile.ground_z
    low = float(ground.min()) - 0.1 * radius
    top = max(float(poses[:, 2, 3].max()), float(ground.max())) + 0.25 * radius
    return Region(centre, float(radius), low, top)


def side_poses(prior: RoadPrior, poses: np.ndarray, config: MeshConfig) -> np.ndarray:
    """Cameras at ``virtual_views`` places along the path, at the capture camera's height,
    looking ``SIDE_YAW_DEG`` left and right of the travel direction, pitched slightly down."""
    if config.virtual_views == 0 or len(poses) < 2:
        return np.zeros((0, 4, 4))
    picks = np.unique(np.linspace(0, len(poses) - 1, config.virtual_views).round().astype(int))
    centres = poses[:, :3, 3]
    travel = np.gradient(centres[:, :2], axis=0)
    result = []
    pitch = np.tan(np.radians(SIDE_PITCH_DEG))
    for index in picks:
        heading = np.arctan2(travel[index, 1], travel[index, 0])
        for side in (-1, 1):
            yaw = heading + side * np.radians(SIDE_YAW_DEG)
            look = np.array([np.cos(yaw), np.sin(yaw), pitch])
            eye = centres[index]
            result.append(look_at(eye, eye + look))
    return np.array(result)


def ground_hit(view: DepthView, prior: RoadPrior) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: z-depth at which the ray meets the ground profile (inf where it does not
    descend), and that point's x, y. The ground under the camera gives the first guess,
    refined once at the ground under that guess (a road that climbs or falls ahead)."""
    directions = world_directions(view.camera_to_world, view.intrinsics, *view.size)
    origin = view.camera_to_world[:3, 3]
    level = float(prior.profile.height(origin[:2]))
    descending = directions[..., 2] < -1e-6
    safe_dz = np.where(descending, directions[..., 2], -1.0)
    t = np.where(descending, (level - origin[2]) / safe_dz, np.inf)
    for _ in range(2):
        finite = np.isfinite(t) & (t > 0)
        xy = origin[:2] + np.where(finite, t, 0.0)[..., None] * directions[..., :2]
        level = prior.profile.height(xy)
        t = np.where(descending, (level - origin[2]) / safe_dz, np.inf)
    t = np.where(t > 0, t, np.inf)
    xy = origin[:2] + np.where(np.isfinite(t), t, 0.0)[..., None] * directions[..., :2]
    return t.astype(np.float32), xy


def road_fusion_view(view: DepthView, prior: RoadPrior, config: MeshConfig) -> DepthView:
    """The view with the depth that is fused (module docstring, ground prior)."""
    trusted = trusted_mask(view, config)
    depth = np.where(trusted, view.depth, 0.0)
    if config.ground_prior:
        ground_t, xy = ground_hit(view, prior)
        on_road = np.isfinite(ground_t) & (prior.profile.distance(xy) <= road_width(prior, config))
        below = view.depth >= ground_t
        depth = np.where(on_road & (below | ~trusted), ground_t, depth)
    return replace(view, depth=depth.astype(np.float32), opacity=None, surface_opacity=None)


def ground_sheet(prior: RoadPrior, width: float, cell: float) -> trimesh.Trimesh:
    """A triangulated height field on the ground profile, covering ``width`` each side of the
    path (cells of ``cell`` world units)."""
    xy = prior.profile.path_xy
    low, high = xy.min(0) - width - cell, xy.max(0) + width + cell
    cols = np.arange(low[0], high[0] + cell, cell)
    rows = np.arange(low[1], high[1] + cell, cell)
    grid = np.stack(np.meshgrid(cols, rows), axis=-1)  # (R, C, 2)
    z = prior.profile.height(grid)
    inside = prior.profile.distance(grid) <= width + cell
    ids = np.arange(grid.shape[0] * grid.shape[1]).reshape(grid.shape[:2])
    quad = inside[:-1, :-1] & inside[1:, :-1] & inside[:-1, 1:] & inside[1:, 1:]
    a, b = ids[:-1, :-1][quad], ids[:-1, 1:][quad]
    c, d = ids[1:, 1:][quad], ids[1:, :-1][quad]
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    vertices = np.concatenate([grid.reshape(-1, 2), z.reshape(-1, 1)], axis=1)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.remove_unreferenced_vertices()
    return mesh


def road_collision(
    fused: trimesh.Trimesh | None, prior: RoadPrior, config: MeshConfig, cell: float
) -> trimesh.Trimesh:
    """The fused mesh with the road's ground and the driven corridor replaced by a ground sheet
    (module docstring, collision); the sheet alone when nothing was fused."""
    width = road_width(prior, config)
    if fused is None or len(fused.faces) == 0:
        return ground_sheet(prior, width, cell)
    centres = fused.triangles_center
    distance = prior.profile.distance(centres[:, :2])
    above = centres[:, 2] - prior.profile.height(centres[:, :2])
    tolerance = config_ground_tolerance(prior, config)
    on_ground = (distance <= width) & (above <= tolerance)
    in_corridor = (distance <= corridor_width(prior)) & (above <= prior.camera_height)
    keep = ~(on_ground | in_corridor)
    kept = fused.submesh([np.flatnonzero(keep)], append=True) if keep.any() else None
    sheet = ground_sheet(prior, width, cell)
    return sheet if kept is None else trimesh.util.concatenate([sheet, kept])


def config_ground_tolerance(prior: RoadPrior, config: MeshConfig) -> float:
    """Height over the ground profile still counted as ground: ``ground_tolerance`` when
    given, else 0.15 m (a kerb's height)."""
    return config.ground_tolerance or 0.15 * prior.metre
