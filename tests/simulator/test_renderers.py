"""Mesh camera geometry and colours against closed-form answers; lighting on rendered images."""

from __future__ import annotations

import numpy as np
import trimesh

from simulator import EnvConfig, make_env
from simulator.renderers import SKY_COLOUR, CameraCaster
from simulator.sensors import CameraModel

CORNERS = np.array([[-5.0, -5.0, 0.0], [5.0, -5.0, 0.0], [0.0, 5.0, 0.0]])
CORNER_COLOURS = np.eye(3)  # red, green, blue


def _triangle_caster(tmp_path, camera):
    mesh = trimesh.Trimesh(CORNERS, [[0, 1, 2]], process=False)
    mesh.visual.vertex_colors = np.hstack([CORNER_COLOURS * 255, np.full((3, 1), 255)]).astype(
        np.uint8
    )
    path = tmp_path / "triangle.ply"
    mesh.export(path)
    return CameraCaster(path, camera, max_depth=20.0)


def _barycentric(points):
    a, b, c = CORNERS[:, :2]
    matrix = np.stack([b - a, c - a], axis=1)
    uv = np.linalg.solve(matrix, (points - a).T).T
    return np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)


def test_mesh_camera_depth_and_colour_match_closed_form(tmp_path):
    camera = CameraModel(32, 24, fov_deg=80.0, forward_offset=0.0, mount_height=0.5, pitch_deg=10.0)
    caster = _triangle_caster(tmp_path, camera)
    pose = camera.camera_to_world(0.3, -0.2, 0.7)
    hits = caster.cast(pose[None])
    depth = caster.depth(hits)[0].reshape(-1)
    rgb = caster.colours(hits)[0].reshape(-1, 3)

    directions = camera.ray_directions() @ pose[:3, :3].T  # camera z = -1: t is z-depth
    t_ground = -pose[2, 3] / directions[:, 2]
    ground = pose[:3, 3] + t_ground[:, None] * directions
    looks_down = directions[:, 2] < 0
    weights = _barycentric(ground[:, :2])
    inside = looks_down & (weights > 1e-3).all(axis=1)
    assert inside.sum() > 200 and (~looks_down).sum() > 50  # ground and sky both in view
    np.testing.assert_allclose(depth[inside], t_ground[inside], rtol=1e-4)
    np.testing.assert_allclose(rgb[inside], weights[inside] @ CORNER_COLOURS, atol=2e-3)
    np.testing.assert_allclose(depth[~looks_down], 20.0)  # misses are at max_depth
    np.testing.assert_allclose(rgb[~looks_down], np.tile(SKY_COLOUR, ((~looks_down).sum(), 1)))


def test_camera_looks_where_the_vehicle_heads(tmp_path):
    camera = CameraModel(8, 8, fov_deg=60.0, forward_offset=0.1, mount_height=0.2, pitch_deg=0.0)
    for yaw in (0.0, 1.0, -2.5):
        pose = camera.camera_to_world(1.0, 2.0, yaw)
        np.testing.assert_allclose(-pose[:3, 2], [np.cos(yaw), np.sin(yaw), 0.0], atol=1e-12)
        np.testing.assert_allclose(pose[:3, 1], [0, 0, 1], atol=1e-12)  # image up is world up
        np.testing.assert_allclose(np.linalg.det(pose[:3, :3]), 1.0)
        np.testing.assert_allclose(pose[:3, 3], [1 + 0.1 * np.cos(yaw), 2 + 0.1 * np.sin(yaw), 0.2])


def test_lighting_presets_change_the_image_not_the_depth(synthetic_scene):
    means, depths = {}, {}
    for preset in ("capture", "dim", "warm"):
        env = make_env(
            EnvConfig(scene=synthetic_scene, obs="rgb+depth", lighting=preset, image_size=32)
        )
        try:
            observation, info = env.reset(seed=0, options={"task_index": 0})
            assert info["lighting"] == preset
            means[preset] = observation["rgb"].reshape(-1, 3).mean(axis=0)
            depths[preset] = observation["depth"]
        finally:
            env.close()
    assert means["dim"].mean() < 0.7 * means["capture"].mean()
    warm_shift = means["warm"] / means["capture"]
    assert warm_shift[0] > warm_shift[2] + 0.2  # warm light: more red than blue
    np.testing.assert_array_equal(depths["capture"], depths["dim"])


def test_photometric_augmentation_varies_between_episodes(synthetic_scene):
    config = EnvConfig(
        scene=synthetic_scene, obs="rgb", photometric_augmentation=True, image_size=16
    )
    env = make_env(config)
    try:
        images = [env.reset(seed=s, options={"task_index": 0})[0]["rgb"] for s in range(4)]
    finally:
        env.close()
    means = [image.mean() for image in images]
    assert np.ptp(means) > 5.0  # same view, different photometric draw
