"""One preset table, one formula: the same light under every camera, on the shipped bird too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from scene_builder.errors import FieldError
from scene_builder.lighting import (
    PRESET_NAMES,
    PRESETS,
    SceneLighting,
    blend_presets,
    preset,
    resolve_presets,
)

BIRD = Path(__file__).resolve().parents[2] / "assets" / "scenes" / "bird"


def test_formula_clips_the_scaled_colour_then_applies_gamma():
    night, bright = PRESETS["night"], PRESETS["bright"]
    grey = np.full((2, 3), 0.5)
    expected = np.tile((night.gain * 0.5) ** night.gamma, (2, 1))
    np.testing.assert_allclose(night.apply(grey), expected, rtol=1e-6)
    # bright saturates: gain 1.5 takes 0.8 past 1, which clips before the gamma
    np.testing.assert_allclose(bright.apply(np.full(3, 0.8)), 1.0)
    np.testing.assert_allclose(PRESETS["capture"].apply(grey), grey, rtol=1e-6)
    # numpy and torch images get the same numbers
    rgb = np.random.default_rng(0).uniform(size=(4, 5, 3)).astype(np.float32)
    for change in PRESETS.values():
        np.testing.assert_allclose(
            change.apply(torch.from_numpy(rgb)).numpy(), change.apply(rgb), rtol=1e-5
        )


def test_the_fields_table_defines_the_scenes_presets():
    bundle = {"capture": PRESETS["capture"], "dim": preset("dim", (0.2, 0.2, 0.2), 1.0)}
    bundle["custom"] = preset("custom", (0.9, 0.8, 0.7), 1.1)
    meta = {"preset_photometric": {"dim": {"gain": [0.55] * 3, "gamma": 1.0}}}
    resolved = resolve_presets(bundle, meta)
    assert list(resolved) == ["capture", "dim", "custom"]  # the bundle's names
    np.testing.assert_allclose(resolved["dim"].gain, 0.55)  # what the field was trained with
    np.testing.assert_allclose(resolved["custom"].gain, [0.9, 0.8, 0.7])  # the bundle's own
    assert resolve_presets(bundle, None)["dim"] is bundle["dim"]


def test_a_blend_mixes_gain_and_gamma_and_the_field_renders_it_from_capture():
    lighting = SceneLighting(dict(PRESETS), capture_code=np.arange(3, dtype=np.float32))
    change = lighting.photometric((("dim", 0.25), ("night", 0.75)))
    np.testing.assert_allclose(
        change.gain, 0.25 * PRESETS["dim"].gain + 0.75 * PRESETS["night"].gain
    )
    assert change.gamma == pytest.approx(0.25 * 1.0 + 0.75 * PRESETS["night"].gamma)
    code, field_change = lighting.appearance((("dim", 0.25), ("night", 0.75)))
    np.testing.assert_array_equal(code, [0, 1, 2])
    np.testing.assert_allclose(field_change.gain, change.gain)
    assert blend_presets(PRESETS, (("warm", 1.0),)) is PRESETS["warm"]
    with pytest.raises(FieldError, match="capture"):
        SceneLighting(dict(PRESETS)).appearance((("dim", 1.0),))


def test_a_field_renders_every_preset_as_its_change_of_the_capture_rendering():
    from tests.scene_builder.fake_fields import BoxesField, orbit_cameras

    field = BoxesField()  # its "dim" code would halve the colours: presets do not use it
    poses, intrinsics = orbit_cameras(count=1, size=(16, 12), focal=12.0)
    capture = field.render(poses, intrinsics, 16, 12, "capture").rgb
    assert capture.std() > 0.05  # the box and the table are in view
    for name in PRESET_NAMES:
        out = field.render(poses, intrinsics, 16, 12, name).rgb
        np.testing.assert_allclose(out, PRESETS[name].apply(capture), rtol=1e-5, atol=1e-5)
    with pytest.raises(FieldError, match="unknown lighting preset 'sunset'"):
        field.render(poses, intrinsics, 16, 12, "sunset")


def test_bird_presets_change_brightness_alike_under_field_and_mesh_cameras():
    """Issue 14: for every preset, the ratio of mean brightness to ``capture`` under the field
    camera and under the mesh camera agree within 5% (simulator cameras at the scene's spawns)."""
    from simulator import EnvConfig, make_env
    from simulator.lighting import EpisodeLighting
    from simulator.renderers import make_renderer

    env = make_env(EnvConfig(scene=BIRD, obs="rgb", renderer="mesh", image_size=24))
    try:
        sim = env.unwrapped
        poses = []
        for index in range(6):
            env.reset(seed=0, options={"task_index": index})
            poses.append(sim.camera_pose())
        poses = np.stack(poses)
        names = list(sim.scene.lighting)
        assert set(PRESET_NAMES) <= set(names)
        lightings = [EpisodeLighting(name, ((name, 1.0),)) for name in names for _ in poses]
        ratios = {}
        for kind in ("field", "mesh"):
            renderer = make_renderer(kind, sim.scene, sim.camera, sim.max_depth, "guided")
            rgb, _ = renderer.render(np.tile(poses, (len(names), 1, 1)), lightings)
            means = rgb.reshape(len(names), -1).mean(axis=1)
            ratios[kind] = means / means[names.index("capture")]
    finally:
        env.close()
    assert ratios["mesh"].min() < 0.5 and ratios["mesh"].max() > 1.2  # presets do change light
    np.testing.assert_allclose(ratios["field"], ratios["mesh"], rtol=0.05)
