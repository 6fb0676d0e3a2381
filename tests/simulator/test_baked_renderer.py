"""The baked camera: a valid env, the mesh camera's surface, and the field camera's lighting.

The lighting check runs on the shipped bird bundle (real capture, baked texture and field):
each preset must change the baked image's brightness by the same ratio as the field camera's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from simulator import EnvConfig
from simulator.lighting import choose_lighting
from simulator.renderers import BakedRenderer, CameraCaster, FieldRenderer
from simulator.sensors import CameraModel

BIRD = Path(__file__).resolve().parents[2] / "assets" / "scenes" / "bird"


def test_baked_env_passes_gymnasium_checks(scene):
    from simulator.env import DriveEnv

    env = DriveEnv(EnvConfig(scene=scene.root, obs="rgb+depth", renderer="baked"), scene=scene)
    check_env(env, skip_render_check=True)
    env.close()


def test_baked_camera_without_texture_draws_the_mesh_cameras_image(scene):
    """A bundle with no baked texture gets its vertex colours as the atlas: same image, depth."""
    camera = CameraModel(40, 30, 70.0, 0.0, 0.08, 10.0)
    baked = BakedRenderer(scene, camera, max_depth=3.0)
    mesh = CameraCaster(scene.visual_mesh_path, camera, max_depth=3.0)
    poses = np.stack([camera.camera_to_world(s.x, s.y, s.yaw) for s in scene.spawns[:4]])
    lighting = choose_lighting("capture", scene.lighting, np.random.default_rng(0))
    rgb, depth = baked.render(poses, [lighting] * len(poses))
    hits = mesh.cast(poses)
    np.testing.assert_allclose(depth, mesh.depth(hits), rtol=1e-5)
    assert np.median(np.abs(rgb - mesh.colours(hits))) < 1e-3
    assert np.mean(np.abs(rgb - mesh.colours(hits))) < 0.01


@pytest.fixture(scope="module")
def bird():
    from scene_builder.bundle import load_scene

    scene = load_scene(BIRD, verify_hashes=False)
    if scene.baked_dir is None:
        pytest.fail(
            "the shipped bird bundle has no baked texture (python -m scene_builder.bake_scene)"
        )
    return scene


def _spawn_poses(scene, camera, count=3):
    return np.stack([camera.camera_to_world(s.x, s.y, s.yaw) for s in scene.spawns[:count]])


def test_baked_depth_is_the_visual_meshs_and_the_dome_is_a_miss(bird):
    camera = CameraModel(32, 32, 70.0, 0.02, 0.03, 5.0)
    baked = BakedRenderer(bird, camera, max_depth=0.5)
    mesh = CameraCaster(bird.visual_mesh_path, camera, max_depth=0.5)
    poses = _spawn_poses(bird, camera)
    lighting = choose_lighting("capture", bird.lighting, np.random.default_rng(0))
    _, depth = baked.render(poses, [lighting] * len(poses))
    np.testing.assert_allclose(depth, mesh.depth(mesh.cast(poses)), rtol=1e-4)


def test_presets_change_brightness_as_they_do_for_the_field_camera(bird):
    camera = CameraModel(32, 32, 70.0, 0.02, 0.03, 5.0)
    poses = _spawn_poses(bird, camera)
    rng = np.random.default_rng(0)
    renderers = {
        "baked": BakedRenderer(bird, camera, max_depth=2.0),
        "field": FieldRenderer(bird, camera, max_depth=2.0),
    }
    means = {}
    for name, renderer in renderers.items():
        for preset in bird.lighting:
            lighting = choose_lighting(preset, bird.lighting, rng)
            rgb, _ = renderer.render(poses, [lighting] * len(poses))
            means[name, preset] = float(rgb.mean())
    for preset in bird.lighting:
        baked = means["baked", preset] / means["baked", "capture"]
        field = means["field", preset] / means["field", "capture"]
        assert abs(baked / field - 1) < 0.05, (preset, baked, field)


def test_one_read_per_frame_equals_face_and_dome_reads_apart(bird):
    """camera_colours (faces and dome of all cameras in one read of the 16-bit atlas copy) draws
    what the float lookups of the faces and of the dome draw."""
    camera = CameraModel(48, 32, 90.0, 0.0, 0.05, 10.0)
    baked = BakedRenderer(bird, camera, max_depth=3.0)
    poses = _spawn_poses(bird, camera)
    rays = baked.camera_rays(poses).reshape(-1, 6)
    hits = baked.caster.cast(rays)
    hit = hits.hit.reshape(-1)
    ids, uvs = hits.primitive_ids.reshape(-1), hits.primitive_uvs.reshape(-1, 2)
    assert 0.1 < hit.mean() < 0.9  # both the mesh and the dome are in view
    rgb = baked.lookup.camera_colours(hit, ids, uvs, poses, baked._units, (0, 0, 0))
    faces = baked.lookup.colours(ids[hit], uvs[hit])
    dome = baked.lookup.dome_colours(rays[~hit, :3], rays[~hit, 3:])
    np.testing.assert_allclose(rgb[hit], faces, atol=2e-4)
    np.testing.assert_allclose(rgb[~hit], dome, atol=2e-4)


def test_batched_frames_equal_frames_drawn_one_by_one(bird):
    """A batch of cameras (the vector env's one call per step) draws each camera's own frame."""
    camera = CameraModel(32, 24, 80.0, 0.02, 0.03, 5.0)
    baked = BakedRenderer(bird, camera, max_depth=1.0)
    poses = _spawn_poses(bird, camera, count=4)
    rng = np.random.default_rng(0)
    lightings = [choose_lighting(p, bird.lighting, rng) for p in ("capture", "dim", "night")]
    lightings.append(choose_lighting("random", bird.lighting, rng))
    rgb, depth = baked.render(poses, lightings)
    for i, (pose, lighting) in enumerate(zip(poses, lightings, strict=True)):
        one_rgb, one_depth = baked.render(pose[None], [lighting])
        np.testing.assert_array_equal(rgb[i], one_rgb[0])
        np.testing.assert_array_equal(depth[i], one_depth[0])
    assert len({float(frame.mean()) for frame in rgb}) == 4  # each its own pose and light
