"""Geometry from the sparse SfM points and the captured images, without a field.

For when no field good enough to give depth could be trained (a field trained briefly on a busy
CPU renders the room as a far backdrop). The ground is a plate at z = 0 over the area the
cameras circled (beyond it nothing was observed: not drivable); each cluster of points standing
on it (DBSCAN, after statistical outlier removal) becomes the alpha shape of its points and the
footprint of its lowest points (an alpha shape follows concave parts a convex hull would fill);
vertex colours come from the captured images with the same visibility-weighted bake as the
field path (``scene_builder.geometry.baking``). Coarser than the field path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import trimesh

from common.open3d_compat import import_open3d
from scene_builder.camera import local_directions
from scene_builder.errors import MeshError
from scene_builder.geometry.types import DepthView, Progress, Region
from scene_builder.raycast import MeshCaster

if TYPE_CHECKING:
    from scene_builder.mesh import MeshConfig


def ground_plate(region: Region, area, cell: float) -> trimesh.Trimesh:
    """A plate at z = 0 over ``area`` (``ground_area``), gridded in ``cell`` squares so colours
    can vary across it."""
    steps = int(np.ceil(2 * region.radius / cell))
    axis = np.linspace(-region.radius, region.radius, steps + 1)
    gx, gy = np.meshgrid(axis + region.centre[0], axis + region.centre[1])
    ids = np.arange(gx.size).reshape(gx.shape)
    quads = np.stack([ids[:-1, :-1], ids[:-1, 1:], ids[1:, 1:], ids[1:, :-1]], -1).reshape(-1, 4)
    vertices = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], 1)
    quads = quads[area.find_simplex(vertices[quads].mean(axis=1)[:, :2]) >= 0]
    return trimesh.Trimesh(
        vertices, np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]]), process=True
    )


def _alpha_shape(o3d, points: np.ndarray, alpha: float) -> trimesh.Trimesh:
    """The alpha shape of ``points`` (open3d): follows concave parts a convex hull would fill;
    the convex hull when the alpha shape comes out empty."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    try:
        shape = o3d.geometry.TriangleMesh.create_from_point_cloud_alpha_shape(cloud, alpha)
        mesh = trimesh.Trimesh(np.asarray(shape.vertices), np.asarray(shape.triangles))
    except RuntimeError:
        mesh = None
    if mesh is None or len(mesh.faces) == 0:
        return trimesh.convex.convex_hull(points)
    return mesh


def obstacle_shapes(
    points: np.ndarray, region: Region, area, cell: float, tolerance: float
) -> list[trimesh.Trimesh]:
    """One closed shape per cluster of ``points`` standing on the ground inside ``area`` (the
    cameras' circle, ``ground_area``), on a grid of ``cell`` metres."""
    o3d = import_open3d()
    above = points[
        (points[:, 2] > tolerance)
        & (points[:, 2] < region.top)
        & (area.find_simplex(points[:, :2]) >= 0)
    ]
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(above))
    if len(above) >= 20:
        cloud, _ = cloud.remove_statistical_outlier(nb_neighbors=20, std_ratio=2.0)
    kept = np.asarray(cloud.points)
    labels = np.asarray(cloud.cluster_dbscan(eps=1.5 * cell, min_points=10)) if len(kept) else []
    shapes = []
    for label in range(int(np.max(labels)) + 1 if len(labels) else 0):
        member = kept[labels == label]
        if len(member) < 30:
            continue
        # a hull is only as good as its outermost points: drop the farthest 3%
        spread = np.linalg.norm(member - np.median(member, axis=0), axis=1)
        member = member[spread <= np.percentile(spread, 97)]
        # Stand it on the ground: the footprint of its lowest points (not of all of them, which
        # would turn the hull into a column as wide as the object's widest part).
        low = member[member[:, 2] <= member[:, 2].min() + 2 * cell]
        standing = np.concatenate([member, np.column_stack([low[:, :2], np.zeros(len(low))])])
        shapes.append(_alpha_shape(o3d, standing, alpha=1.8 * cell))
    return shapes


def captured_views(
    mesh: trimesh.Trimesh,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    image_paths: list,
    image_size: tuple[int, int],
    config: MeshConfig,
    progress: Progress | None = None,
) -> list[DepthView]:
    """The captured images (at ``config.render_scale``) as colour views of ``mesh``, each with
    the z-depth of ``mesh`` ray-cast from its camera (0 where nothing is hit) for visibility."""
    import cv2

    caster = MeshCaster.from_trimesh(mesh)
    pick = np.unique(
        np.linspace(0, len(poses) - 1, min(config.max_training_views, len(poses))).round()
    ).astype(int)
    width = max(8, int(round(image_size[0] * config.render_scale)))
    height = max(8, int(round(image_size[1] * config.render_scale)))
    factor = np.array([width / image_size[0], height / image_size[1]] * 2)
    views = []
    for done, index in enumerate(pick, start=1):
        image = cv2.imread(str(image_paths[index]), cv2.IMREAD_COLOR)
        if image is None:
            raise MeshError(f"{image_paths[index]}: not a readable image")
        rgb = cv2.cvtColor(
            cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
        )
        intr = np.asarray(intrinsics[index], dtype=np.float64) * factor
        hits = caster.cast_cameras(poses[index][None], local_directions(intr, width, height))
        depth = hits.depth(miss=0.0).reshape(height, width)
        views.append(DepthView(poses[index], intr, rgb.astype(np.float32) / 255, depth))
        if progress:
            progress(done, len(pick), "captured views")
    return views
