"""Training the embedded field on the real bird capture (downscaled 16x, every 2nd frame).

What must hold: a few seconds of training raise held-out PSNR by a clear margin, held-out
frames are never trained on, resuming gives exactly the uninterrupted result, the CLI writes a
loadable field with every lighting preset, and bad input fails with one clear line.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from driveenv.cli import main
from scene_builder.datasets import PosedDataset, save_dataset
from scene_builder.errors import FieldError
from scene_builder.fields import PRESET_NAMES, load_field
from scene_builder.fields.embedded import EmbeddedConfig
from scene_builder.fields.rays import estimate_bounds
from scene_builder.importers import read_llff
from scene_builder.train import CHECKPOINT_FILE, TrainConfig, Trainer, train_field

SIZE = (34, 60)  # the bird's 544 x 960 frames at 1/16


@pytest.fixture(scope="module")
def bird_dataset(shared_data, tmp_path_factory):
    """Every 2nd bird frame at 1/16 resolution as a posed dataset (92 frames, 12 held out)."""
    root = tmp_path_factory.mktemp("bird16")
    images = root / "images"
    images.mkdir()
    for path in sorted((shared_data / "bird_capture" / "images").glob("*.jpg")):
        small = cv2.resize(cv2.imread(str(path)), SIZE, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(images / path.name), small, [cv2.IMWRITE_JPEG_QUALITY, 95])
    frames, _ = read_llff(shared_data / "bird_capture" / "poses_bounds.npy", images)
    save_dataset(PosedDataset(root, frames[::2]))
    return root


def tiny_config(steps: int, **overrides) -> TrainConfig:
    field = EmbeddedConfig(
        resolution=48,
        initial_resolution=24,
        density_components=4,
        color_components=8,
        hidden_width=32,
        proxy_resolution=48,
        coarse_samples=32,
        fine_samples=8,
        render_coarse_samples=48,
        render_fine_samples=12,
    )
    return TrainConfig(
        downscale=1,
        steps=steps,
        batch_rays=1024,
        eval_every=1000,
        checkpoint_seconds=1e9,
        field=field,
        **overrides,
    )


def test_bird_bounds_are_an_orbit_around_the_bird(bird_dataset):
    from scene_builder.datasets import load_dataset

    poses = load_dataset(bird_dataset).poses
    bounds = estimate_bounds(poses)
    distances = np.linalg.norm(poses[:, :3, 3] - np.array(bounds.center), axis=1)
    # The focus is the bird: all cameras are about equally far from it, the inner cube reaches
    # half-way to them, and the contraction keeps every camera inside the grid.
    assert distances.std() / distances.mean() < 0.2
    assert bounds.scale == pytest.approx(0.5 * np.median(distances))
    grid = bounds.grid_coordinates(
        bounds.normalise(torch.tensor(poses[:, :3, 3], dtype=torch.float32))
    )
    assert grid.abs().max() < 1.0 and grid.abs().max() > 0.5


@pytest.mark.training
def test_training_raises_holdout_psnr_and_never_sees_holdout_frames(bird_dataset, tmp_path):
    config = tiny_config(steps=60)
    trainer = Trainer(bird_dataset, tmp_path / "field", config)
    held_out = set(trainer.holdout.frame_indices.tolist())
    assert held_out == set(range(0, 92, 8))
    assert held_out.isdisjoint(trainer.train.frame_indices.tolist())
    before = trainer.holdout_psnr()
    trainer.run()
    after = trainer.holdout_psnr()
    assert after > before + 2.0, (before, after)
    meta = json.loads((tmp_path / "field" / "field.json").read_text())
    assert meta["complete"] and meta["holdout_psnr"] == pytest.approx(after, abs=1e-6)


@pytest.mark.training
def test_resume_gives_the_uninterrupted_result(bird_dataset, tmp_path):
    straight = train_field(bird_dataset, tmp_path / "straight", tiny_config(steps=24))
    first = Trainer(bird_dataset, tmp_path / "split", tiny_config(steps=24))
    # Interrupt after 10 steps (past the first upsampling at step 2 and a proxy refresh).
    first.model.refresh_proxy()
    for _ in range(10):
        first.train_step()
    first.save_state()
    resumed = train_field(bird_dataset, tmp_path / "split", tiny_config(steps=24), resume=True)
    assert resumed.step == straight.step == 24
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    a = torch.load(tmp_path / "straight" / CHECKPOINT_FILE, weights_only=True)
    b = torch.load(tmp_path / "split" / CHECKPOINT_FILE, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.training
def test_cli_trains_a_loadable_field_with_all_presets(bird_dataset, tmp_path, capsys):
    out = tmp_path / "field"
    args = [
        "train-field",
        str(bird_dataset),
        "--out",
        str(out),
        "--field-downscale",
        "1",
        "--field-steps",
        "30",
    ]
    assert (
        main([*args, "--batch-rays", "512", "--field-resolution", "32", "--lighting-augmentation"])
        == 0
    )
    field = load_field(out)
    assert field.backend_name == "embedded"
    assert set(PRESET_NAMES) <= set(field.lighting_presets)
    # An existing field is not overwritten unless asked.
    assert main(args) == 1
    assert "already holds a field" in capsys.readouterr().err
    # Presets change brightness, never depth.
    pose = json.loads((bird_dataset / "transforms.json").read_text())["frames"][3][
        "transform_matrix"
    ]
    bright = field.render(np.array(pose), [55.0, 55.0, 17.0, 30.0], 34, 60, appearance="bright")
    dim = field.render(np.array(pose), [55.0, 55.0, 17.0, 30.0], 34, 60, appearance="dim")
    assert bright.rgb.mean() > dim.rgb.mean() + 0.1
    torch.testing.assert_close(bright.depth, dim.depth)


def test_bad_input_is_one_line_error(bird_dataset, tmp_path, capsys):
    assert (
        main(["train-field", str(tmp_path), "--out", str(tmp_path / "f"), "--field-steps", "5"])
        == 1
    )
    assert "transforms.json: no such file" in capsys.readouterr().err
    with pytest.raises(FieldError, match="no training state to resume from"):
        train_field(bird_dataset, tmp_path / "nothing", tiny_config(steps=5), resume=True)
    out = tmp_path / "field"
    train_field(bird_dataset, out, tiny_config(steps=3))
    (out / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(FieldError, match="corrupt checkpoint"):
        load_field(out)
    (out / "train_state.pt").write_bytes(b"garbage")
    with pytest.raises(FieldError, match="corrupt training state"):
        train_field(bird_dataset, out, tiny_config(steps=5), resume=True)
