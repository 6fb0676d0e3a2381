"""The render API of the embedded field: shapes, dtypes, projection and depth conventions,
batching, the surface-depth fast path, and one-line errors for bad input.

The field here is built by hand: one density blob at a known world point, so where it must
appear in an image and at what z-depth is known exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scene_builder.camera import camera_rays, distort, undistort
from scene_builder.errors import FieldError
from scene_builder.fields import load_field
from scene_builder.fields.embedded import EmbeddedConfig, EmbeddedField, EmbeddedRadianceField
from scene_builder.fields.rays import SceneBounds
from scene_builder.lighting import PRESETS

BLOB = np.array([0.2, -0.1, 0.3])


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world (OpenGL axes) at ``eye`` looking at ``target``."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, np.cross(back, right), back, eye
    return pose


def blob_field(tmp_path=None) -> EmbeddedRadianceField:
    """A bounded field, empty but for a dense blob of radius ~0.06 around BLOB."""
    config = EmbeddedConfig(resolution=64, initial_resolution=64, proxy_resolution=64)
    bounds = SceneBounds(center=(0.0, 0.0, 0.0), scale=1.0, bounded=True, near=0.05, far=3.0)
    model = EmbeddedField(config, bounds, num_codes=2)
    axis = torch.linspace(-1, 1, 64)
    bump = [torch.exp(-((axis - float(c)) ** 2) / (2 * 0.03**2)) for c in BLOB]
    with torch.no_grad():
        model.planes.zero_()
        model.lines.zero_()
        # Mode 0: plane over (x, y) stored as (H=y, W=x), line over z.
        model.planes[0, 0] = 12 * bump[1][:, None] * bump[0][None, :]
        model.lines[0, 0, :, 0] = 12 * bump[2]
        model.codes[1] = 1.0
    model.refresh_proxy()
    meta = {"presets": {"capture": [0.0] * 8, "other": [1.0] * 8}}
    return EmbeddedRadianceField(tmp_path or ".", meta, model)


@pytest.fixture(scope="module")
def field():
    return blob_field()


def test_shapes_dtypes_and_ranges(field):
    poses = np.stack([look_at([1.5, 0.2, 0.6], BLOB), look_at([-1.0, 1.0, 0.8], BLOB)])
    out = field.render(poses, [40.0, 40.0, 20.0, 15.0], 40, 30)
    assert out.rgb.shape == (2, 30, 40, 3) and out.rgb.dtype == torch.float32
    assert out.depth.shape == (2, 30, 40) and out.depth.dtype == torch.float32
    assert out.accumulation.shape == (2, 30, 40) and out.accumulation.dtype == torch.float32
    assert out.rgb.min() >= 0 and out.rgb.max() <= 1
    assert out.accumulation.min() >= 0 and out.accumulation.max() <= 1
    # A single (4, 4) pose and (4,) intrinsics are one camera.
    single = field.render(torch.tensor(poses[0]), torch.tensor([40.0, 40.0, 20.0, 15.0]), 40, 30)
    assert single.rgb.shape == (1, 30, 40, 3)


@pytest.mark.parametrize("eye", [[1.5, 0.2, 0.6], [-0.4, -1.3, 0.9], [0.3, 1.2, -0.5]])
def test_blob_appears_at_its_projected_pixel_and_z_depth(field, eye):
    width, height, focal = 64, 48, 50.0
    intrinsics = np.array([focal, focal * 1.1, 30.0, 26.0])
    # Aim a little off the blob so that it does not sit at the principal point.
    pose = look_at(eye, BLOB + np.array([0.05, 0.04, -0.03]))
    out = field.render(pose, intrinsics, width, height)
    point = np.linalg.inv(pose) @ np.append(BLOB, 1.0)
    z_depth = -point[2]
    u = intrinsics[2] + intrinsics[0] * point[0] / z_depth
    v = intrinsics[3] - intrinsics[1] * point[1] / z_depth
    # The silhouette's centre (pixel centres at +0.5) is the projection of the blob's centre.
    weight = (out.accumulation[0].numpy() > 0.5).astype(float)
    rows, cols = np.mgrid[0:height, 0:width] + 0.5
    assert out.accumulation.max() > 0.99 and weight.sum() > 10
    assert abs((weight * cols).sum() / weight.sum() - u) < 0.5
    assert abs((weight * rows).sum() / weight.sum() - v) < 0.5
    # The front of a blob of radius ~0.06 is hit there; depth is z along the viewing axis.
    assert z_depth - 0.1 < float(out.depth[0, int(v), int(u)]) < z_depth
    # Far from the blob nothing is hit.
    assert float(out.accumulation[0, 0, 0]) < 0.05


def test_batched_cameras_equal_separate_renders(field):
    poses = np.stack([look_at([1.5, 0.2, 0.6], BLOB), look_at([-1.0, 1.0, 0.8], BLOB)])
    intrinsics = np.array([[40.0, 40.0, 16.0, 16.0], [30.0, 30.0, 16.0, 16.0]])
    batch = field.render(poses, intrinsics, 32, 32, appearance=torch.zeros(2, 8))
    for i in range(2):
        alone = field.render(poses[i], intrinsics[i], 32, 32)
        torch.testing.assert_close(batch.rgb[i], alone.rgb[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(batch.depth[i], alone.depth[0], atol=1e-4, rtol=0)


def test_surface_depth_path_matches_free_marching(field):
    pose = look_at([1.2, -0.6, 0.7], BLOB)
    intrinsics = [48.0, 48.0, 24.0, 24.0]
    free = field.render(pose, intrinsics, 48, 48)
    hit = free.accumulation > 0.99
    surface = torch.where(hit, free.depth, torch.full_like(free.depth, float("inf")))
    fast = field.render(pose, intrinsics, 48, 48, surface_depth=surface)
    assert hit.sum() > 10
    assert torch.allclose(fast.depth[hit], free.depth[hit], atol=0.03)
    assert torch.allclose(fast.rgb[hit], free.rgb[hit], atol=0.05)
    # Pixels without a surface (inf) fall back to free marching.
    torch.testing.assert_close(fast.rgb[~hit], free.rgb[~hit], atol=1e-5, rtol=0)


def test_appearance_presets_and_codes(field):
    pose = look_at([1.5, 0.2, 0.6], BLOB)
    capture = field.render(pose, [40.0, 40.0, 16.0, 16.0], 32, 32, appearance="capture")
    dim = field.render(pose, [40.0, 40.0, 16.0, 16.0], 32, 32, appearance="dim")
    code = field.render(pose, [40.0, 40.0, 16.0, 16.0], 32, 32, appearance=np.ones(8))
    # a preset is its change of the capture rendering (scene_builder.lighting), not a code
    torch.testing.assert_close(dim.rgb, PRESETS["dim"].apply(capture.rgb))
    assert (code.rgb - capture.rgb).abs().max() > 0.01  # a code changes the colour ...
    torch.testing.assert_close(capture.depth, code.depth)  # ... and never moves geometry
    with pytest.raises(FieldError, match="unknown lighting preset 'sunset'"):
        field.render(pose, [40.0, 40.0, 16.0, 16.0], 32, 32, appearance="sunset")
    with pytest.raises(FieldError, match="appearance code has shape"):
        field.render(pose, [40.0, 40.0, 16.0, 16.0], 32, 32, appearance=np.ones(3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"camera_to_world": np.eye(3)}, "camera_to_world has shape"),
        ({"intrinsics": [1.0, 2.0]}, "intrinsics has shape"),
        ({"intrinsics": [0.0, 10.0, 8.0, 8.0]}, "focal lengths"),
        ({"width": 0}, "must be positive"),
        ({"surface_depth": np.ones((1, 4, 4))}, "surface_depth has shape"),
        ({"camera_to_world": np.full((4, 4), np.nan)}, "NaN"),
    ],
)
def test_bad_render_input_is_one_line_field_error(field, kwargs, message):
    args = {
        "camera_to_world": np.eye(4),
        "intrinsics": [10.0, 10.0, 8.0, 8.0],
        "width": 16,
        "height": 16,
    }
    args.update(kwargs)
    with pytest.raises(FieldError, match=message):
        field.render(**args)


def test_load_field_errors(tmp_path):
    with pytest.raises(FieldError, match="field.json: no such file"):
        load_field(tmp_path)
    (tmp_path / "field.json").write_text("{not json")
    with pytest.raises(FieldError, match="not valid JSON"):
        load_field(tmp_path)
    (tmp_path / "field.json").write_text('{"backend": "magic"}')
    with pytest.raises(FieldError, match="unknown backend 'magic'"):
        load_field(tmp_path)


def test_distortion_round_trip_matches_opencv():
    import cv2

    coefficients = torch.tensor([-0.12, 0.03, 0.001, -0.002])
    x = torch.linspace(-0.6, 0.6, 9).repeat(9)
    y = torch.linspace(-0.4, 0.4, 9).repeat_interleave(9)
    dx, dy = distort(x, y, coefficients)
    ux, uy = undistort(dx, dy, coefficients)
    torch.testing.assert_close(ux, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(uy, y, atol=1e-5, rtol=0)
    points = np.stack([dx.numpy(), dy.numpy()], -1).reshape(-1, 1, 2).astype(np.float64)
    reference = cv2.undistortPoints(points, np.eye(3), coefficients.numpy().astype(np.float64))
    np.testing.assert_allclose(reference.reshape(-1, 2)[:, 0], ux.numpy(), atol=1e-4)
    # Rays of a distorted camera go through the undistorted directions.
    origins, directions = camera_rays(
        torch.eye(4), torch.tensor([100.0, 100.0, 0.0, 0.0]), dx * 100, dy * 100, coefficients
    )
    torch.testing.assert_close(directions[:, 0], x, atol=1e-5, rtol=0)
    torch.testing.assert_close(directions[:, 1], -y, atol=1e-5, rtol=0)


def test_a_photometric_code_changes_colour_globally_and_never_depth():
    field = blob_field()
    model = field.model
    assert model.config.appearance_model == "photometric"
    with torch.no_grad():
        model.photometric_layer.weight.zero_()
        model.photometric_layer.weight[:3, 0] = float(np.log(0.5))  # code[0] = 1: half the gain
    pose = look_at([1.5, 0.2, 0.6], BLOB)
    plain = field.render(pose, [40.0, 40.0, 16.0, 16.0], 32, 32, appearance=np.zeros(8))
    code = np.zeros(8)
    code[0] = 1.0
    darker = field.render(pose, [40.0, 40.0, 16.0, 16.0], 32, 32, appearance=code)
    torch.testing.assert_close(darker.rgb, 0.5 * plain.rgb, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(darker.depth, plain.depth)


def test_a_field_written_before_the_appearance_option_loads_as_the_decoder_model():
    config = EmbeddedConfig.from_json({"resolution": 64, "appearance_dim": 8})
    assert config.appearance_model == "decoder"
    model = EmbeddedField(config, SceneBounds((0.0, 0.0, 0.0), 1.0, True, 0.05, 3.0), num_codes=2)
    assert model.photometric_layer is None
    assert model.ray_layer.in_features == 9 + 8
    # the code reaches the colour through the decoder: two codes give two colours
    origins, directions = torch.zeros(4, 3), torch.tensor([[0.0, 0.0, -1.0]]).repeat(4, 1)
    t, delta = model.sample_intervals(origins, directions, 16, 8)
    codes = torch.cat([torch.zeros(2, 8), torch.ones(2, 8)])
    rgb, _, _ = model.composite(origins, directions, t, delta, codes)
    assert not torch.allclose(rgb[0], rgb[2])


def test_an_unknown_appearance_model_is_a_clear_error():
    bounds = SceneBounds((0.0, 0.0, 0.0), 1.0, True, 0.05, 3.0)
    with pytest.raises(FieldError, match="appearance_model 'nerfw': expected one of"):
        EmbeddedField(EmbeddedConfig(appearance_model="nerfw"), bounds, num_codes=2)
