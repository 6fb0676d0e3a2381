"""The mesh ray caster and the camera module: closed-form hits, projection, bounded memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from scene_builder.camera import (
    camera_rays,
    fov_intrinsics,
    local_directions,
    look_at,
    pixel_grid,
    points_at_depth,
    project,
)
from scene_builder.errors import MeshError
from scene_builder.raycast import MeshCaster

BIRD_VISUAL = Path(__file__).resolve().parents[2] / "assets" / "scenes" / "bird" / "visual.ply"


def _plate():
    corners = np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
    return corners, np.array([[0, 1, 2], [0, 2, 3]])


def test_numpy_and_torch_pixel_rays_agree():
    pose = look_at([0.3, -0.4, 0.8], [0.0, 0.1, 0.0])
    intrinsics = np.array([20.0, 22.0, 9.5, 6.0])
    u, v = pixel_grid(16, 12)
    _, directions = camera_rays(
        torch.as_tensor(pose, dtype=torch.float64),
        torch.as_tensor(intrinsics, dtype=torch.float64),
        u.double(),
        v.double(),
    )
    world = local_directions(intrinsics, 16, 12, np.float64) @ pose[:3, :3].T
    np.testing.assert_allclose(world, directions.numpy(), atol=1e-12)
    np.testing.assert_allclose(fov_intrinsics(64, 48, 90.0), [32.0, 32.0, 32.0, 24.0], rtol=1e-6)


def test_projection_inverts_the_pixel_rays():
    pose = look_at([0.5, 0.2, 0.7], [0.0, 0.0, 0.0])
    intrinsics = np.array([30.0, 30.0, 12.0, 8.0])
    depth = np.random.default_rng(0).uniform(0.5, 2.0, size=(16, 24))
    points = points_at_depth(pose, intrinsics, depth).reshape(-1, 3)
    u, v, z = project(points, pose, intrinsics)
    rows, cols = np.indices((16, 24))
    np.testing.assert_allclose(u, cols.ravel() + 0.5, atol=1e-9)
    np.testing.assert_allclose(v, rows.ravel() + 0.5, atol=1e-9)
    np.testing.assert_allclose(z, depth.ravel(), atol=1e-9)


def test_cast_gives_z_depth_triangle_and_colour():
    vertices, faces = _plate()
    colours = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0]])
    caster = MeshCaster(vertices, faces, colours)
    pose = look_at([0.0, 0.0, 2.0], [0.0, 0.0, 0.0], up=(0.0, 1.0, 0.0))
    directions = local_directions([8.0, 8.0, 8.0, 8.0], 16, 16)  # 90 degrees: 4 m wide at 2 m
    hits = caster.cast_cameras(np.stack([pose, pose]), directions)
    assert hits.t_hit.shape == (2, 256)
    centre = 8 * 16 + 8
    assert hits.t_hit[0, centre] == pytest.approx(2.0, rel=1e-6)  # z-depth, not ray length
    plate = np.zeros((16, 16), bool)
    plate[4:12, 4:12] = True  # the 2 m plate covers the middle half of the view
    np.testing.assert_array_equal(hits.hit[0].reshape(16, 16), plate)
    rgb = caster.colours(hits, background=(0.5, 0.5, 0.5))
    assert rgb.shape == (2, 256, 3) and rgb.min() >= 0 and rgb.max() <= 1 + 1e-6
    away = caster.cast(np.array([[0.0, 0.0, 2.0, 0.0, 0.0, 1.0]]))
    assert not away.hit[0] and away.depth(miss=-1.0)[0] == -1.0
    np.testing.assert_allclose(caster.colours(away, (0.1, 0.2, 0.3)), [[0.1, 0.2, 0.3]])


def test_bad_meshes_are_one_line_mesh_errors(tmp_path):
    with pytest.raises(MeshError, match="no triangles"):
        MeshCaster(np.zeros((3, 3)), np.zeros((0, 3), int))
    broken = tmp_path / "broken.ply"
    broken.write_text("ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2\n")
    with pytest.raises(MeshError, match="broken.ply"):
        MeshCaster.from_file(broken)
    vertices, faces = _plate()
    with pytest.raises(MeshError, match="without vertex colours"):
        caster = MeshCaster(vertices, faces)
        caster.colours(caster.cast(np.array([[0, 0, 1, 0, 0, -1.0]])), (0, 0, 0))


def _rss_mb() -> float:
    import resource

    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 1e6


def test_many_casts_do_not_grow_memory():
    """Issue 15: open3d 0.20 grows with every cast made with a positive ``nthreads``; the
    caster's shared-arena setting keeps memory flat (benchmarks/raycast_memory.py measures it)."""
    caster = MeshCaster.from_file(BIRD_VISUAL, colours=True)
    directions = local_directions(fov_intrinsics(64, 64, 90.0), 64, 64)
    pose = look_at([0.3, 0.3, 0.1], [0.0, 0.0, 0.02])
    for _ in range(200):  # warm up open3d's and numpy's buffers
        caster.cast_cameras(pose[None], directions)
    start = _rss_mb()
    for _ in range(2000):
        caster.cast_cameras(pose[None], directions)
    assert _rss_mb() - start < 5.0
