"""Geometry from a radiance field: collision mesh, visual mesh with baked colours, drivable map.

The public entry point: ``MeshConfig``, ``extract_geometry`` (from a field) and
``points_geometry`` (from sparse points and images); each step lives in
``scene_builder.geometry`` and the drivable map in ``scene_builder.drivable``. Steps, and why
each uses what it uses:

1. Depth views (``geometry.views``). The field renders depth, colour and opacity from the
   training cameras (at a reduced size) and from rings of virtual cameras a few centimetres
   above the ground looking at the orbit centre, so the low sides of obstacles, which a small
   vehicle's camera sees, are covered. Depth comes through the render API, so every backend
   works. A pixel is trusted (``geometry.trust``) when its opacity reaches ``min_accumulation``
   and the field's weight sits at the rendered depth: a second render with ``surface_depth`` set
   to it (samples in a band of one field cell each side) must reach ``min_surface_opacity``. A
   surface stops the ray in that band; haze (the floaters over a white table) spreads its weight
   over decimetres and fails it.
2. The ground prior (``geometry.trust``). The world frame puts the ground at z = 0 (a plane
   fitted to the sparse points). Inside the area the training cameras circled, a pixel whose
   rendered surface lies at or below that plane sees ground: it fuses the plane's depth. A
   field renders a white, textureless table as a far backdrop below it, which fused as it is
   leaves the table holed and bumpy. Trusted surfaces above the plane keep the field's depth;
   untrusted pixels above it are left out.
   Fusion (``geometry.tsdf``): open3d's tensor ``VoxelBlockGrid`` TSDF (``ScalableTSDFVolume``
   returns an empty mesh in open3d 0.20, and the offscreen renderer can deadlock, so neither is
   used), with every view integrated into every block of the region, so views that see past a
   floater vote it away. TSDF rather than marching cubes on the field's density, by measurement
   (benchmarks/scene_bird.py ``--compare``, figures in benchmarks/RESULTS.md): the density's
   level set keeps floaters that block rays toward the obstacle, and the density is not part of
   the render API.
3. Cleaning (``geometry.cleanup``): crop to the arena region, drop connected components smaller
   than a fraction of the largest (floaters), fill small holes, simplify to a face budget.
4. Colours (``geometry.baking``): each vertex takes the field's colour from the views in which
   it is visible (depth test against the rendered depth), weighted by how squarely the view
   sees it.
5. Drivable map (``scene_builder.drivable.drivable_from_mesh``): per cell, a ray cast straight
   down from above must meet the ground (within ``ground_tolerance`` of the ground level found
   near z = 0) before anything else, so obstacles of any height block their footprint and cells
   beyond the table's edge, which meet no ground, are cliffs. Small islands are dropped,
   one-cell gaps in the ground are closed.
6. Optional, for parts that must be dynamic: ``convex_parts`` (CoACD, extra ``driveenv[coacd]``).

A forward capture (a street walked or driven; ``align`` records it as a road with a ground
profile under the camera path) takes ``road_geometry`` instead: the region, side views and
ground prior follow the path, the road's ground is a sheet on the profile, and the drivable
map is grown from the driven corridor (``scene_builder.geometry.road_fusion``,
``scene_builder.road``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import trimesh

from common.config_cli import option
from scene_builder.camera import look_at
from scene_builder.drivable import drivable_from_mesh
from scene_builder.errors import MeshError
from scene_builder.geometry.baking import bake_vertex_colours
from scene_builder.geometry.cleanup import clean_mesh, convex_parts, fill_small_holes
from scene_builder.geometry.ground import RoadPrior
from scene_builder.geometry.points import captured_views, ground_plate, obstacle_shapes
from scene_builder.geometry.trust import fusion_view, ground_area
from scene_builder.geometry.tsdf import fuse_tsdf
from scene_builder.geometry.types import DepthView, Geometry, Progress, Region
from scene_builder.geometry.views import arena_region, render_depth_views, render_views

__all__ = [
    "DepthView",
    "Geometry",
    "MeshConfig",
    "Region",
    "arena_region",
    "clean_mesh",
    "convex_parts",
    "drivable_from_mesh",
    "extract_geometry",
    "fill_small_holes",
    "geometry_from_views",
    "ground_area",
    "ground_plate",
    "look_at",
    "points_geometry",
    "render_depth_views",
]


@dataclass
class MeshConfig:
    """How geometry is extracted; lengths in metres unless the name says otherwise."""

    resolution: int = option(
        256, "TSDF voxels across the arena region's widest side", flag="tsdf-resolution"
    )
    target_faces: int = option(120_000, "face budget of the collision mesh")
    render_scale: float = option(
        0.25, "size of the rendered training views as a fraction of the captured images"
    )
    max_training_views: int = option(92, "training views rendered for depth fusion")
    virtual_views: int = option(
        16, "virtual cameras per ring (rings near the ground) rendered for depth fusion"
    )
    virtual_size: int = option(96, "pixels per side of a virtual view")
    # Virtual camera rings as (distance from centre, height), in units of the orbit radius: low
    # ones see obstacles as a small vehicle does, high ones see the ground out to the arena edge.
    virtual_rings: tuple[tuple[float, float], ...] = ((1.0, 0.15), (1.0, 0.4), (1.5, 1.0))
    min_accumulation: float = option(0.7, "opacity a rendered ray must reach to give a depth")
    # Opacity of a thin band (one field cell each side) around the rendered depth: a surface
    # stops the ray there, semi-transparent haze spreads its weight over decimetres (step 1).
    min_surface_opacity: float = option(
        0.5, "light a band one field cell around a pixel's depth must stop for it to be fused"
    )
    # The ground prior (step 2): inside the cameras' circle the ground is the plane z = 0.
    ground_prior: bool = option(
        True, "fuse the plane z = 0 as the ground inside the cameras' circle"
    )
    truncation_voxels: float = option(4.0, "TSDF truncation distance, in voxels")
    weight_threshold: float = option(2.0, "TSDF weight a voxel needs to be kept")
    region_factor: float = option(
        2.0, "arena radius as this x the cameras' largest distance from the orbit centre"
    )
    region_radius: float | None = option(
        None,
        "arena radius in metres around the orbit centre, or a road's camera path (overrides "
        "--region-factor / --road-margin)",
    )
    min_component_fraction: float = option(
        0.05, "drop mesh components with fewer faces than this x the largest's"
    )
    hole_edges: int = option(64, "fill holes bounded by at most this many edges")
    map_resolution: float | None = option(
        None, "drivable-map metres per pixel (default: arena radius / 100)"
    )
    ground_tolerance: float | None = option(
        None, "height still counted as ground, metres (default: 1.5% of the arena radius)"
    )
    min_island_fraction: float = option(
        0.05, "drop drivable islands smaller than this x the largest"
    )
    # Road scenes (a forward capture; scene_builder.geometry.road_fusion): lengths in metres, or
    # in camera heights / 1.5 without a metric scale.
    road_width: float = option(
        4.0, "road: metres each side of the camera path where the ground prior applies"
    )
    road_margin: float = option(
        15.0, "road: metres of surroundings kept beyond the camera path (the region)"
    )

    def __post_init__(self) -> None:
        if self.target_faces < 100 or self.resolution < 16:
            raise MeshError(
                f"--target-faces {self.target_faces} / --tsdf-resolution {self.resolution}: "
                "need at least 100 faces and 16 voxels"
            )
        if not 0 <= self.min_surface_opacity <= 1:
            raise MeshError(f"--min-surface-opacity {self.min_surface_opacity}: must be in [0, 1]")
        positive = {
            "--region-factor": self.region_factor,
            "--region-radius": self.region_radius,
            "--map-resolution": self.map_resolution,
            "--ground-tolerance": self.ground_tolerance,
            "--road-width": self.road_width,
            "--truncation-voxels": self.truncation_voxels,
        }
        bad = [
            f"{flag} {value}"
            for flag, value in positive.items()
            if value is not None and value <= 0
        ]
        if self.road_margin < 0:
            bad.append(f"--road-margin {self.road_margin}")
        if bad:
            raise MeshError(f"{', '.join(bad)}: must be positive")
        fractions = {
            "--min-accumulation": self.min_accumulation,
            "--min-component-fraction": self.min_component_fraction,
            "--min-island-fraction": self.min_island_fraction,
        }
        outside = [f"{flag} {value}" for flag, value in fractions.items() if not 0 <= value <= 1]
        if outside:
            raise MeshError(f"{', '.join(outside)}: must be in [0, 1]")
        if self.max_training_views < 1 or self.virtual_views < 0 or not 0 < self.render_scale <= 1:
            raise MeshError(
                f"--max-training-views {self.max_training_views} / --virtual-views "
                f"{self.virtual_views} / --render-scale {self.render_scale}: need at least 1 "
                "view, no negative count, and a scale in (0, 1]"
            )


def extract_geometry(
    render_field,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    image_size: tuple[int, int],
    config: MeshConfig | None = None,
    progress: Progress | None = None,
    road: RoadPrior | None = None,
) -> Geometry:
    """Collision mesh, coloured visual mesh and drivable map from a field (module docstring);
    with a ``road`` prior (a forward capture), ``road_geometry`` instead.

    ``poses`` (N, 4, 4) and ``intrinsics`` (N, 4) are the training cameras in the world frame
    (z up, ground z = 0) at full ``image_size`` (width, height); ``render_field`` offers the
    field render API (``scene_builder.fields.RadianceField.render``).
    """
    config = config or MeshConfig()
    poses = np.asarray(poses, dtype=np.float64)
    if len(poses) == 0:
        raise MeshError("no camera poses to render depth from")
    if road is not None:
        return road_geometry(render_field, poses, intrinsics, image_size, road, config, progress)
    region = arena_region(poses, config)
    stats: dict[str, Any] = {"config": asdict(config)}
    timer = time.perf_counter()
    views = render_depth_views(
        render_field, poses, intrinsics, image_size, region, config, progress
    )
    stats["render_s"] = time.perf_counter() - timer
    return geometry_from_views(views, poses, region, config, stats)


def geometry_from_views(
    views: list[DepthView],
    poses: np.ndarray,
    region: Region,
    config: MeshConfig,
    stats: dict[str, Any] | None = None,
) -> Geometry:
    """Steps 2-5 of the module docstring on rendered ``views`` (``poses``: the training
    cameras, whose circle bounds the ground prior)."""
    stats = {"config": asdict(config)} if stats is None else stats
    stats["views"] = len(views)
    timer = time.perf_counter()
    voxel = 2 * region.radius / config.resolution
    area = ground_area(poses) if config.ground_prior else None
    stats["ground_prior"] = area is not None  # off by config, or no circled area to apply it to
    views = [fusion_view(view, area, config) for view in views]
    fused = fuse_tsdf(views, region, voxel, config)
    stats["fuse_s"] = time.perf_counter() - timer
    stats["fused_faces"] = len(fused.faces)
    timer = time.perf_counter()
    collision = clean_mesh(fused, region, config)
    stats["clean_s"] = time.perf_counter() - timer
    stats["faces"] = len(collision.faces)
    stats["voxel_size"] = voxel
    return _finish(collision, views, 3 * voxel, region, config, stats)


def points_geometry(
    points: np.ndarray,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    image_paths: list,
    image_size: tuple[int, int],
    config: MeshConfig | None = None,
    progress: Progress | None = None,
) -> Geometry:
    """Geometry from the sparse SfM points and the captured images, without a field
    (``scene_builder.geometry.points``): a ground plate over the cameras' circle, one shape per
    cluster of points standing on it, colours baked from the images."""
    config = config or MeshConfig()
    poses = np.asarray(poses, dtype=np.float64)
    region = arena_region(poses, config)
    stats: dict[str, Any] = {"config": asdict(config), "source": "sparse points"}
    tick = time.perf_counter()
    tolerance = config.ground_tolerance or 0.015 * region.radius
    cell = 4 * region.radius / config.resolution
    circle = ground_area(poses)
    if circle is None:
        raise MeshError(
            "the cameras do not circle an area to lay the ground plate on; use --geometry field"
        )
    obstacles = obstacle_shapes(np.asarray(points), region, circle, cell, tolerance)
    stats["obstacles"] = len(obstacles)
    collision = trimesh.util.concatenate([ground_plate(region, circle, cell), *obstacles])
    stats["faces"] = len(collision.faces)
    stats["fuse_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    views = captured_views(collision, poses, intrinsics, image_paths, image_size, config, progress)
    stats["views_s"] = time.perf_counter() - tick
    stats["voxel_size"] = cell
    return _finish(collision, views, cell, region, config, stats)


def _finish(
    collision: trimesh.Trimesh,
    views: list[DepthView],
    depth_tolerance: float,
    region: Region,
    config: MeshConfig,
    stats: dict[str, Any],
) -> Geometry:
    """Steps 4 and 5 on a cleaned collision mesh: the visual mesh with colours baked from
    ``views``, and the drivable map; each timed into ``stats``."""
    tick = time.perf_counter()
    visual = collision.copy()
    visual.visual.vertex_colors = bake_vertex_colours(collision, views, depth_tolerance)
    stats["bake_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    drivable = drivable_from_mesh(
        collision,
        region,
        resolution=config.map_resolution or region.radius / 100,
        ground_tolerance=config.ground_tolerance or 0.015 * region.radius,
        min_island_fraction=config.min_island_fraction,
        stats=stats,
    )
    stats["map_s"] = time.perf_counter() - tick
    return Geometry(collision, visual, drivable, region, stats)


def road_geometry(
    render_field,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    image_size: tuple[int, int],
    road: RoadPrior,
    config: MeshConfig,
    progress: Progress | None = None,
) -> Geometry:
    """Geometry of a forward capture (``scene_builder.geometry.road_fusion``): the field's depth
    from the training and side views, fused with the ground prior along the camera path; the
    road's ground and the driven corridor replaced by a sheet on the ground profile; the road
    drivable map (``scene_builder.road``)."""
    from scene_builder.geometry import road_fusion
    from scene_builder.road import road_drivable_map

    region = road_fusion.road_region(road, poses, config)
    stats: dict[str, Any] = {"config": asdict(config), "scene_kind": "road"}
    timer = time.perf_counter()
    no_rings = replace(config, virtual_views=0)
    views = render_depth_views(
        render_field, poses, intrinsics, image_size, region, no_rings, progress
    )
    sides = road_fusion.side_poses(road, poses, config)
    if len(sides):
        size = config.virtual_size
        focal = 0.5 * size / np.tan(np.radians(35))
        side_intrinsics = np.tile([focal, focal, size / 2, size / 2], (len(sides), 1))
        views += render_views(
            render_field, sides, side_intrinsics, size, size, config, progress, "side views"
        )
    stats["render_s"] = time.perf_counter() - timer
    stats["views"] = len(views)
    timer = time.perf_counter()
    voxel = 2 * region.radius / config.resolution
    views = [road_fusion.road_fusion_view(view, road, config) for view in views]
    try:
        cleaned = clean_mesh(fuse_tsdf(views, region, voxel, config), region, config)
    except MeshError:  # the field is sure of nothing: the road is the ground prior alone
        cleaned = None
    stats["fused_faces"] = 0 if cleaned is None else len(cleaned.faces)
    collision = road_fusion.road_collision(cleaned, road, config, cell=voxel)
    stats["fuse_s"] = time.perf_counter() - timer
    stats["faces"] = len(collision.faces)
    stats["voxel_size"] = voxel
    timer = time.perf_counter()
    visual = collision.copy()
    visual.visual.vertex_colors = bake_vertex_colours(collision, views, 3 * voxel)
    stats["bake_s"] = time.perf_counter() - timer
    timer = time.perf_counter()
    drivable = road_drivable_map(collision, visual, road, region, config, stats)
    stats["map_s"] = time.perf_counter() - timer
    return Geometry(collision, visual, drivable, region, stats)
