"""The field camera's plumbing, with an analytic field that ray-casts the scene mesh itself.

The fake field sees the scene through the render API's own rays (``RadianceField.render`` turns
poses and intrinsics into rays), so matching depths prove that the simulator's camera poses,
intrinsics and pixel convention are the field's, that the mesh-guided surface depths are passed
per pixel, and that each camera of a batch gets its own lighting. The real field's
agreement with the mesh is measured in benchmarks/env_speed.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from scene_builder.fields.base import RadianceField
from scene_builder.lighting import scene_lighting
from scene_builder.raycast import MeshCaster
from simulator import EnvConfig, make_vec
from simulator.renderers import BACKGROUND_DEPTH_FACTOR


class MeshField(RadianceField):
    """Depth = the first mesh hit along each ray; colour = half the appearance code (RGB gain)."""

    backend_name = "analytic"

    def __init__(self, scene):
        super().__init__(scene.root, {"backend": "analytic"})
        self.caster = MeshCaster.from_file(scene.collision_mesh_path)
        self.lighting_presets = {
            name: torch.tensor(preset.gain, dtype=torch.float32)
            for name, preset in scene.lighting.items()
        }
        self.surface_inputs = []

    @property
    def appearance_dim(self) -> int:
        return 3

    def _render_rays(self, origins, directions, codes, surface_t):
        self.surface_inputs.append(None if surface_t is None else surface_t.clone())
        rays = torch.cat([origins, directions], dim=1).numpy()
        t = torch.from_numpy(self.caster.cast(rays).t_hit)
        hit = torch.isfinite(t)
        rgb = torch.where(hit[:, None], 0.5 * codes, torch.zeros_like(codes))
        return rgb, torch.where(hit, t, torch.zeros_like(t)), hit.float()


@pytest.fixture
def field_scene(scene, monkeypatch):
    """The synthetic scene pretending to carry a field (the analytic one above)."""
    fake = MeshField(scene)
    with_field = dataclasses.replace(scene, field_dir=scene.root / "field")
    monkeypatch.setattr(with_field, "load_field", lambda: fake, raising=False)
    return with_field, fake


def _env(scene_bundle, **options):
    from simulator.env import DriveEnv

    config = EnvConfig(scene=scene_bundle.root, obs="rgb+depth", image_size=24, **options)
    return DriveEnv(config, scene=scene_bundle)


def test_field_and_mesh_cameras_see_the_same_surface(field_scene, scene):
    bundle, fake = field_scene
    field_env = _env(bundle, renderer="field")
    mesh_env = _env(scene, renderer="mesh")
    try:
        for index in range(3):
            field_obs, _ = field_env.reset(seed=0, options={"task_index": index})
            mesh_obs, _ = mesh_env.reset(seed=0, options={"task_index": index})
            np.testing.assert_allclose(field_obs["depth"], mesh_obs["depth"], rtol=1e-4, atol=1e-5)
            # guided mode passed the mesh depth of every pixel, the background band on misses
            surface = fake.surface_inputs[-1].numpy()
            mesh_depth = mesh_obs["depth"].reshape(-1)
            sky = mesh_depth >= mesh_env.max_depth
            assert sky.any() and (~sky).any()
            np.testing.assert_allclose(surface[sky], BACKGROUND_DEPTH_FACTOR * mesh_env.max_depth)
            np.testing.assert_allclose(surface[~sky], mesh_depth[~sky], rtol=1e-5)
    finally:
        field_env.close()
        mesh_env.close()


def test_free_mode_marches_without_surface_depth(field_scene):
    bundle, fake = field_scene
    env = _env(bundle, renderer="field", field_mode="free")
    try:
        env.reset(seed=0)
        assert fake.surface_inputs[-1] is None
    finally:
        env.close()


def test_hybrid_mode_marches_freely_where_the_mesh_is_missed(field_scene, scene):
    bundle, fake = field_scene
    field_env = _env(bundle, renderer="field", field_mode="hybrid")
    mesh_env = _env(scene, renderer="mesh")
    try:
        field_obs, _ = field_env.reset(seed=0, options={"task_index": 1})
        mesh_obs, _ = mesh_env.reset(seed=0, options={"task_index": 1})
        surface = fake.surface_inputs[-1].numpy()
        mesh_depth = mesh_obs["depth"].reshape(-1)
        sky = mesh_depth >= mesh_env.max_depth
        assert sky.any() and (~sky).any()
        assert np.isinf(surface[sky]).all()  # the render API's "march this ray freely"
        np.testing.assert_allclose(surface[~sky], mesh_depth[~sky], rtol=1e-5)
        # a freely marched ray that gathers nothing reads as "nothing in range"
        np.testing.assert_allclose(field_obs["depth"], mesh_obs["depth"], rtol=1e-4, atol=1e-5)
    finally:
        field_env.close()
        mesh_env.close()


def test_batched_field_cameras_each_get_their_lighting(field_scene, monkeypatch):
    bundle, fake = field_scene
    monkeypatch.setattr("simulator.vector.load_scene_for", lambda config: bundle)
    config = EnvConfig(
        scene=bundle.root, obs="rgb", renderer="field", image_size=16, lighting="random"
    )
    vec = make_vec(config, 4)
    lighting = scene_lighting(bundle, fake)
    try:
        observation, infos = vec.reset(seed=0, options={"task_index": 0})
        assert len(set(infos["lighting"])) == 4  # four different random blends
        for i, env in enumerate(vec.envs):
            code, change = lighting.appearance(env.lighting.blend)  # capture code, the change
            ground = observation["rgb"][i][-1, 8]  # a pixel on the plate
            expected = change.apply(np.clip(0.5 * code, 0, 1))
            np.testing.assert_allclose(ground / 255.0, expected, atol=1 / 255)
    finally:
        vec.close()
