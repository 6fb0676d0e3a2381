"""Projective texturing: fill a texture atlas from the training images of a posed dataset.

Each texel's surface point is projected into every training image; it takes that image's
colour (bilinear) where the point is in view and not hidden (its depth agrees with the depth
the mesh ray cast gives at that pixel), weighted by how squarely and how closely the camera
sees it (``cos^sharpness / depth^2``). Before the blend every image's colours are divided by its
own exposure (a per-image, per-channel gain fitted by alternating least squares against the
consensus of the others on a sample of texels), so a frame shot a little brighter or warmer
does not leave a patch; the gains have geometric mean 1, so the atlas is lit as the capture
on average, which is the ``capture`` preset every camera starts from (``scene_builder.lighting``).

Only the training frames are used (the field's hold-out rule), so the held-out frames stay a
fair test (``eval.fidelity``). Texels no image sees take the colour of the nearest seen texel
of the atlas (a texel never seen by any training frame lies where no camera looked).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.progress import progress_bar
from scene_builder.camera import local_directions, project
from scene_builder.errors import MeshError
from scene_builder.raycast import MeshCaster
from scene_builder.texture_atlas import AtlasLayout, TextureAtlas, dome_mesh, dome_texels


@dataclass(frozen=True)
class BakeConfig:
    cell: int = 8  # texels per atlas cell side (two triangles per cell)
    dome_height: int = 256  # texels of the background dome's latitude range
    dome_radius_factor: float = 8.0  # dome radius in units of the cameras' mean distance
    sharpness: float = 4.0  # weight exponent of the viewing angle's cosine
    depth_tolerance: float = 0.02  # relative depth mismatch still counted as visible
    gain_samples: int = 20000  # texels used to fit the per-image exposure gains
    gain_iterations: int = 4
    seed: int = 0


@dataclass
class View:
    """A training image (float RGB, undistorted) with its pose and intrinsics."""

    rgb: np.ndarray
    camera_to_world: np.ndarray
    intrinsics: np.ndarray  # fx, fy, cx, cy


def atlas_geometry(vertices, faces, centre, radius: float, config: BakeConfig):
    """The atlas mesh (scene then dome) and the world point, normal and atlas (x, y) of every
    texel to bake."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    layout = AtlasLayout.plan(len(faces), config.cell, config.dome_height)
    xy, face, uv = layout.cell_texels()
    corners = vertices[faces[face]]
    points = corners[:, 0] + uv[:, :1] * (corners[:, 1] - corners[:, 0])
    points += uv[:, 1:] * (corners[:, 2] - corners[:, 0])
    vertex_normals = _vertex_normals(vertices, faces)[faces[face]]  # smooth: no faceted weights
    normals = vertex_normals[:, 0] + uv[:, :1] * (vertex_normals[:, 1] - vertex_normals[:, 0])
    normals += uv[:, 1:] * (vertex_normals[:, 2] - vertex_normals[:, 0])
    # the bowl's floor: under the ground (z = 0) and under nearly all of the mesh, so that the
    # mesh is always seen in front of it
    floor = min(0.0, float(np.percentile(vertices[:, 2], 1))) - 0.005 * radius
    dome_vertices, dome_faces, dome_uvs = dome_mesh(centre, radius, layout, floor)
    dome_xy, dome_points = dome_texels(centre, radius, layout, floor)
    on_ground = np.abs(dome_points[:, 2] - floor) < 1e-9
    dome_normals = np.where(on_ground[:, None], (0.0, 0.0, 1.0), np.asarray(centre) - dome_points)
    mesh = (
        np.concatenate([vertices, dome_vertices]).astype(np.float32),
        np.concatenate([faces, dome_faces + len(vertices)]),
        np.concatenate([layout.face_uvs(), dome_uvs]),
    )
    top = layout.rows * layout.cell
    dome = np.array([*np.asarray(centre, float), radius, floor, top, *layout.dome_size], float)
    texels = (
        np.concatenate([xy, dome_xy]),
        np.concatenate([points, dome_points]),
        np.concatenate([normals, dome_normals]),
    )
    return layout, mesh, texels, dome


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted mean of the adjacent faces' normals at every vertex (unit length)."""
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return _normalised(normals)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True).clip(1e-12)


def observe(view: View, caster: MeshCaster, points, normals, config: BakeConfig):
    """Indices of the texels ``view`` sees, their colours in it and their weights."""
    height, width = view.rgb.shape[:2]
    directions = local_directions(view.intrinsics, width, height)
    depth = caster.cast_cameras(view.camera_to_world[None], directions).depth(miss=np.inf)
    depth = depth.reshape(height, width)
    u, v, z = project(points, view.camera_to_world, view.intrinsics)
    with np.errstate(invalid="ignore"):
        inside = (z > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    index = np.nonzero(inside)[0]
    u, v, z = u[index], v[index], z[index]
    seen = depth[v.astype(np.intp), u.astype(np.intp)]
    visible = z <= seen * (1 + config.depth_tolerance)
    index, u, v, z = index[visible], u[visible], v[visible], z[visible]
    to_camera = _normalised(view.camera_to_world[:3, 3] - points[index])
    facing = np.abs(np.einsum("ij,ij->i", normals[index], to_camera))
    weight = facing.clip(0.05, 1.0) ** config.sharpness / (z * z)
    colours = bilinear(view.rgb, u - 0.5, v - 0.5)
    return index, colours, weight.astype(np.float32)


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) read at continuous pixel-index coordinates (centres at integers),
    clamped at the borders."""
    height, width = image.shape[:2]
    x0f, y0f = np.floor(x), np.floor(y)
    fx, fy = (x - x0f)[:, None], (y - y0f)[:, None]
    x0 = np.clip(x0f.astype(np.intp), 0, width - 1)
    y0 = np.clip(y0f.astype(np.intp), 0, height - 1)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    return top * (1 - fy) + (image[y1, x0] * (1 - fx) + image[y1, x1] * fx) * fy


def fit_gains(samples: np.ndarray, weights: np.ndarray, iterations: int) -> np.ndarray:
    """Per-view, per-channel exposure gains (V, 3) from the views' colours of shared texels:
    ``samples`` (V, T, 3) and ``weights`` (V, T) (0 where a view does not see a texel)."""
    gains = np.ones((samples.shape[0], 3))
    for _ in range(iterations):
        normalised = samples / gains[:, None, :]
        total = weights.sum(0)
        consensus = (weights[..., None] * normalised).sum(0) / total.clip(1e-12)[:, None]
        shared = (weights > 0) & (total[None] > weights)  # texels other views see too
        w = (weights * shared)[..., None]
        numerator = (w * samples * consensus[None]).sum(1)
        denominator = (w * consensus[None] ** 2).sum(1)
        gains = np.where(denominator > 1e-9, numerator / denominator.clip(1e-12), 1.0)
        gains = gains.clip(0.25, 4.0)
        gains /= np.exp(np.log(gains).mean(0, keepdims=True))
    return gains


def bake_atlas(vertices, faces, views: list[View], centre, radius, config: BakeConfig):
    """A ``TextureAtlas`` of the mesh (and a background dome) filled from ``views``."""
    if not views:
        raise MeshError("no training images to bake a texture from")
    layout, mesh, (xy, points, normals), dome = atlas_geometry(
        vertices, faces, centre, radius, config
    )
    normals = _normalised(normals)
    caster = MeshCaster(mesh[0], mesh[1])
    rng = np.random.default_rng(config.seed)
    sample = rng.choice(len(points), min(config.gain_samples, len(points)), replace=False)
    samples = np.zeros((len(views), len(sample), 3), np.float32)
    sample_weights = np.zeros((len(views), len(sample)), np.float32)
    for k, view in enumerate(views):
        index, colours, weight = observe(view, caster, points[sample], normals[sample], config)
        samples[k, index], sample_weights[k, index] = colours, weight
    gains = fit_gains(samples, sample_weights, config.gain_iterations)
    total = np.zeros((len(points), 3))
    weight_sum = np.zeros(len(points))
    with progress_bar() as progress:
        task = progress.add_task("baking texture", total=len(views), status="")
        for k, view in enumerate(views):
            index, colours, weight = observe(view, caster, points, normals, config)
            total[index] += colours * (weight[:, None] / gains[k])
            weight_sum[index] += weight
            progress.advance(task)
    width, height = layout.size
    image = _fill_unseen(xy, total, weight_sum, (height, width))
    return TextureAtlas(mesh[0], mesh[1], mesh[2], len(faces), image, dome), gains


def _fill_unseen(xy, total, weight_sum, shape) -> np.ndarray:
    """The atlas image: seen texels their blend, unseen ones their nearest seen texel's."""
    from scipy.spatial import cKDTree

    seen = weight_sum > 0
    colours = np.full((len(xy), 3), 0.5)
    colours[seen] = total[seen] / weight_sum[seen, None]
    if seen.any() and not seen.all():
        _, nearest = cKDTree(xy[seen]).query(xy[~seen])
        colours[~seen] = colours[seen][nearest]
    image = np.zeros((*shape, 3), np.float32)
    image[xy[:, 1], xy[:, 0]] = colours
    return image.clip(0.0, 1.0)
