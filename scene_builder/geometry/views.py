"""Step 1: the cameras that render depth from a field, and the rendering.

The training cameras (at a reduced size) and rings of virtual cameras around the orbit centre
(low ones see the sides of obstacles as a small vehicle does; high ones see the ground out to
the arena edge). Depth comes through the field's render API, so every backend works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from scene_builder.camera import look_at
from scene_builder.geometry.types import DepthView, Progress, Region

if TYPE_CHECKING:
    from scene_builder.mesh import MeshConfig


def orbit_centre(poses: np.ndarray) -> np.ndarray:
    """x, y of the point nearest to every camera's optical axis: what an orbit looks at.

    The cameras' mean position is biased by uneven sampling along the orbit (it can lie beside
    the object); captures that do not orbit (parallel axes) use the mean.
    """
    forward = -poses[:, :3, 2] / np.linalg.norm(poses[:, :3, 2], axis=1, keepdims=True)
    projector = np.eye(3)[None] - forward[:, :, None] * forward[:, None, :]
    system = projector.sum(axis=0)
    if np.linalg.cond(system) > 1e6:
        return poses[:, :2, 3].mean(axis=0)
    focus = np.linalg.solve(system, np.einsum("nij,nj->i", projector, poses[:, :3, 3]))
    return focus[:2]


def arena_region(poses: np.ndarray, config: MeshConfig) -> Region:
    """The arena around the cameras' orbit centre (``orbit_centre``; the ground is z = 0)."""
    centre = orbit_centre(poses)
    orbit = float(np.linalg.norm(poses[:, :2, 3] - centre, axis=1).max())
    if config.region_radius is not None:
        radius = float(config.region_radius)
    else:
        radius = config.region_factor * max(orbit, 1e-6)
    top = max(float(poses[:, 2, 3].max()), 0.0) + 0.5 * radius
    return Region(centre, radius, -0.25 * radius, top)


def virtual_poses(region: Region, orbit_radius: float, config: MeshConfig) -> np.ndarray:
    """Rings of cameras around the orbit centre (``config.virtual_rings``), facing the centre."""
    poses = []
    for ring, (distance, height) in enumerate(config.virtual_rings):
        for index in range(config.virtual_views):
            angle = 2 * np.pi * (index + 0.5 * ring) / config.virtual_views
            offset = distance * orbit_radius * np.array([np.cos(angle), np.sin(angle)])
            eye = np.array([*(region.centre + offset), height * orbit_radius])
            target = np.array([*region.centre, 0.3 * min(height, 0.4) * orbit_radius])
            poses.append(look_at(eye, target))
    return np.array(poses).reshape(-1, 4, 4)


def render_views(
    render_field,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    width: int,
    height: int,
    config: MeshConfig,
    progress: Progress | None = None,
    label: str = "views",
) -> list[DepthView]:
    """Render colour, depth and opacity for each pose, and the opacity of a band at that depth.

    The band opacity comes from a second render with ``surface_depth`` set to the rendered
    depth (samples only in a thin band around it, the render API's fast path). ``trusted_mask``
    then keeps pixels where the field's weight sits at the rendered depth, not spread along the
    ray (whose expected depth then lies in empty space).
    """
    views = []
    for index, (pose, intr) in enumerate(zip(poses, intrinsics, strict=True)):
        out = render_field.render(pose[None], intr, width, height, appearance="capture")
        depth = np.nan_to_num(out.depth[0].numpy().astype(np.float32), nan=0.0, posinf=0.0)
        band = render_field.render(
            pose[None], intr, width, height, appearance="capture", surface_depth=depth[None]
        )
        views.append(
            DepthView(
                pose,
                np.asarray(intr, float),
                out.rgb[0].numpy(),
                depth,
                out.accumulation[0].numpy(),
                band.accumulation[0].numpy(),
            )
        )
        if progress:
            progress(index + 1, len(poses), label)
    return views


def render_depth_views(
    render_field,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    image_size: tuple[int, int],
    region: Region,
    config: MeshConfig,
    progress: Progress | None = None,
) -> list[DepthView]:
    """Step 1 of the module docstring: training views at ``render_scale``, then the rings."""
    pick = np.unique(
        np.linspace(0, len(poses) - 1, min(config.max_training_views, len(poses)))
        .round()
        .astype(int)
    )
    width = max(8, int(round(image_size[0] * config.render_scale)))
    height = max(8, int(round(image_size[1] * config.render_scale)))
    scaled = np.asarray(intrinsics, dtype=np.float64)[pick] * [
        width / image_size[0],
        height / image_size[1],
        width / image_size[0],
        height / image_size[1],
    ]
    views = render_views(
        render_field, poses[pick], scaled, width, height, config, progress, "training views"
    )
    orbit = float(np.linalg.norm(poses[:, :2, 3] - region.centre, axis=1).max())
    ring = virtual_poses(region, orbit, config)
    size = config.virtual_size
    focal = 0.5 * size / np.tan(np.radians(35))
    ring_intrinsics = np.tile([focal, focal, size / 2, size / 2], (len(ring), 1))
    views += render_views(
        render_field, ring, ring_intrinsics, size, size, config, progress, "ground views"
    )
    return views
