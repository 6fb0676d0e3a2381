"""Vertex colours baked from coloured depth views (visibility- and angle-weighted)."""

from __future__ import annotations

import numpy as np
import trimesh

from scene_builder.camera import project
from scene_builder.geometry.types import DepthView


def bake_vertex_colours(
    mesh: trimesh.Trimesh, views: list[DepthView], depth_tolerance: float
) -> np.ndarray:
    """RGBA uint8 per vertex: the visibility- and angle-weighted mean of the views' colours.

    Vertices no view sees take the colour of the nearest seen vertex.
    """
    vertices = np.asarray(mesh.vertices)
    normals = np.asarray(mesh.vertex_normals)
    total = np.zeros((len(vertices), 3))
    weight = np.zeros(len(vertices))
    for view in views:
        width, height = view.size
        u, v, z = project(vertices, view.camera_to_world, view.intrinsics)
        with np.errstate(invalid="ignore"):
            ok = (z > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        index = np.nonzero(ok)[0]
        col, row = u[index].astype(int), v[index].astype(int)
        rendered = view.depth[row, col]
        visible = (rendered > 0) & (np.abs(rendered - z[index]) <= depth_tolerance)
        index, col, row = index[visible], col[visible], row[visible]
        to_camera = view.camera_to_world[:3, 3] - vertices[index]
        to_camera /= np.linalg.norm(to_camera, axis=1, keepdims=True)
        facing = np.abs(np.einsum("ij,ij->i", normals[index], to_camera))
        w = np.clip(facing, 0.05, 1.0) / z[index]
        np.add.at(total, index, view.rgb[row, col] * w[:, None])
        np.add.at(weight, index, w)
    seen = weight > 0
    colours = np.full((len(vertices), 3), 0.5)
    colours[seen] = total[seen] / weight[seen, None]
    if seen.any() and not seen.all():
        from scipy.spatial import cKDTree

        _, nearest = cKDTree(vertices[seen]).query(vertices[~seen])
        colours[~seen] = colours[seen][nearest]
    rgba = np.concatenate([colours, np.ones((len(vertices), 1))], axis=1)
    return np.clip(rgba * 255, 0, 255).astype(np.uint8)
