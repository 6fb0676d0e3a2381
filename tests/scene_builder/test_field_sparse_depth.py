"""Keypoint depths from the COLMAP model: conventions, filtering, and the geometry score.

What must hold: a keypoint's ray, followed for its depth, lands on its triangulated point in the
aligned world frame (so OpenGL axes, scale and alignment are all accounted for); a model that
does not belong to the poses, or no model, gives no observations; and the held-out keypoint
depth error of a field falls as the field learns the scene's geometry.
"""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch

from scene_builder.align import AlignConfig, align_dataset
from scene_builder.datasets import load_dataset, load_sparse_points, save_dataset, split_indices
from scene_builder.fields.evaluate import evaluate_sparse_depth
from scene_builder.fields.rays import camera_rays
from scene_builder.fields.sparse_depth import load_sparse_depth
from scene_builder.importers import import_poses
from scene_builder.train import Trainer
from tests.scene_builder.test_field_train import tiny_config

SIZE = (34, 60)  # 1/16 of the bird's 544 x 960 frames


@pytest.fixture(scope="module")
def bird_colmap(shared_data, tmp_path_factory):
    """The bird's reference COLMAP model imported with 1/16 images, aligned to metres."""
    small = tmp_path_factory.mktemp("bird_small_images")
    for path in sorted((shared_data / "bird_capture" / "images").glob("*.jpg")):
        image = cv2.resize(cv2.imread(str(path)), SIZE, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(small / path.name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    root = tmp_path_factory.mktemp("bird_colmap") / "bird"
    import_poses(shared_data / "bird_capture" / "sparse" / "0", root, images=small)
    dataset = load_dataset(root)
    for frame in dataset.frames:  # the images are 1/16 of the model's cameras
        frame.camera = frame.camera.scaled(1 / 16)
    save_dataset(dataset)
    align_dataset(root, AlignConfig.from_cli("auto", "camera-height=0.074"))
    return root


def test_keypoint_rays_end_on_their_points_in_the_aligned_world(bird_colmap):
    dataset = load_dataset(bird_colmap)
    frames = np.arange(0, len(dataset), 4)
    sparse = load_sparse_depth(dataset, frames, downscale=1)
    assert sparse is not None and sparse.count > 50 * len(frames)
    assert sparse.u.max() <= SIZE[0] and sparse.v.max() <= SIZE[1]
    poses = torch.tensor(dataset.poses[frames], dtype=torch.float32)
    cameras = [dataset.frames[i].camera for i in frames]
    intrinsics = torch.tensor([[c.fx, c.fy, c.cx, c.cy] for c in cameras], dtype=torch.float32)
    origins, directions = camera_rays(
        poses[sparse.image], intrinsics[sparse.image], sparse.u, sparse.v
    )
    ends = (origins + sparse.depth[:, None] * directions).numpy()
    points, _ = load_sparse_points(dataset)
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(points).query(ends)
    extent = np.ptp(dataset.poses[:, :3, 3], axis=0).max()
    # 1/16 images: a keypoint's pixel is rounded to ~1/16 px of the original, so the ray passes
    # within a fraction of a millimetre; a wrong axis, scale or transform misses by centimetres.
    assert np.median(distance) < 0.002 * extent
    assert np.median(sparse.depth.numpy()) == pytest.approx(
        0.2, rel=0.5
    )  # metres, not COLMAP units


def test_a_model_that_does_not_match_the_poses_gives_no_depth(bird_colmap, tmp_path):
    dataset = load_dataset(bird_colmap)
    shutil.copytree(bird_colmap, tmp_path / "moved", dirs_exist_ok=True)
    moved = load_dataset(tmp_path / "moved")
    angle = np.radians(10)
    tilt = np.eye(4)  # every camera tilted 10 degrees about its x axis: keypoints move ~160 px
    tilt[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    for frame in moved.frames:
        frame.camera_to_world = frame.camera_to_world @ tilt
    save_dataset(moved)
    frames = np.arange(0, len(dataset), 8)
    assert load_sparse_depth(moved, frames, downscale=1) is None
    shutil.rmtree(tmp_path / "moved" / "colmap")
    assert load_sparse_depth(load_dataset(tmp_path / "moved"), frames, downscale=1) is None


@pytest.mark.training
def test_held_out_keypoint_depth_error_falls_as_the_field_learns(bird_colmap, tmp_path):
    trainer = Trainer(bird_colmap, tmp_path / "field", tiny_config(400))
    _, held = split_indices(len(trainer.dataset), 8)
    sparse = load_sparse_depth(trainer.dataset, held, downscale=1)
    assert sparse is not None and sparse.count > 100
    trainer.model.refresh_proxy()
    before = evaluate_sparse_depth(trainer.model, trainer.holdout, sparse)
    trainer.run()
    after = evaluate_sparse_depth(trainer.model, trainer.holdout, sparse)
    assert after.keypoints == before.keypoints == sparse.count
    assert after.median_relative_error < 0.5 * before.median_relative_error
    assert after.within_5_percent > before.within_5_percent + 0.2
