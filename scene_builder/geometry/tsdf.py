"""TSDF fusion of depth views into a surface (open3d's tensor ``VoxelBlockGrid``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import trimesh

from common.open3d_compat import import_open3d
from scene_builder.camera import points_at_depth
from scene_builder.errors import MeshError
from scene_builder.geometry.types import DepthView, Region

if TYPE_CHECKING:
    from scene_builder.mesh import MeshConfig

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def depth_inside_region(view: DepthView, region: Region, margin: float) -> np.ndarray:
    """The view's depth with pixels whose surface point lies outside the region set to 0.

    The walls and floor of the room are not part of the arena; leaving them out keeps the TSDF
    small (its block count is bounded by the region's volume).
    """
    points = points_at_depth(view.camera_to_world, view.intrinsics, view.depth)
    inside = (
        (np.linalg.norm(points[..., :2] - region.centre, axis=-1) <= region.radius + margin)
        & (points[..., 2] >= region.bottom - margin)
        & (points[..., 2] <= region.top + margin)
    )
    return np.where(inside & (view.depth > 0), view.depth, 0).astype(np.float32)


def fuse_tsdf(views: list[DepthView], region: Region, voxel_size: float, config: MeshConfig):
    """Integrate the depth views into a VoxelBlockGrid TSDF; returns a trimesh (uncleaned).

    Every view is integrated into every voxel block of the region (not only the blocks near its
    own surface, open3d's usual use), so a view that sees past a spot marks it as free space:
    a floater one view rendered is voted away by the views that look through it.
    """
    o3d = import_open3d()
    core = o3d.core
    trunc = config.truncation_voxels
    block = 16 * voxel_size
    low = np.floor(np.array([*(region.centre - region.radius), region.bottom]) / block)
    high = np.floor(np.array([*(region.centre + region.radius), region.top]) / block)
    axes = [np.arange(a, b + 1) for a, b in zip(low, high, strict=True)]
    blocks_np = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3).astype(np.int32)
    if len(blocks_np) > 200_000:
        raise MeshError(
            f"{len(blocks_np)} TSDF blocks for the region: lower --resolution (now "
            f"{config.resolution})"
        )
    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight"),
        attr_dtypes=(core.float32, core.float32),
        attr_channels=((1), (1)),
        voxel_size=voxel_size,
        block_resolution=16,
        block_count=len(blocks_np),
    )
    blocks = core.Tensor(blocks_np)
    grid.hashmap().activate(blocks)
    depth_max = float(
        max(np.linalg.norm(v.camera_to_world[:3, 3] - [*region.centre, 0]) for v in views)
        + 2 * region.radius
    )
    integrated = 0
    for view in views:
        fx, fy, cx, cy = view.intrinsics
        intrinsic = core.Tensor(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64))
        extrinsic = core.Tensor(np.linalg.inv(view.camera_to_world @ OPENGL_TO_OPENCV))
        depth = depth_inside_region(view, region, margin=trunc * voxel_size)
        if not depth.any():
            continue
        image = o3d.t.geometry.Image(core.Tensor(depth))
        grid.integrate(blocks, image, intrinsic, extrinsic, 1.0, depth_max, trunc)
        integrated += 1
    if integrated == 0:
        raise MeshError("the field rendered no trusted depth inside the arena region")
    try:
        mesh = grid.extract_triangle_mesh(weight_threshold=config.weight_threshold).to_legacy()
    except RuntimeError:  # open3d fails on a volume with no zero crossing
        mesh = None
    vertices = np.asarray(mesh.vertices) if mesh is not None else np.zeros((0, 3))
    faces = np.asarray(mesh.triangles) if mesh is not None else np.zeros((0, 3), int)
    if len(faces) == 0:
        raise MeshError("TSDF fusion produced no surface: the field rendered no trusted depth")
    return trimesh.Trimesh(vertices, faces, process=True)
