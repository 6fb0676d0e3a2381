"""align: ground, up, origin and scale on the bird's reference model; undo; frame independence."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from driveenv.cli import main
from scene_builder.align import AlignConfig, align_dataset, source_poses, umeyama
from scene_builder.datasets import apply_similarity, load_dataset, load_sparse_points, save_dataset
from scene_builder.errors import DatasetError
from scene_builder.importers import import_poses


@pytest.fixture(scope="module")
def bird_import(shared_data, tmp_path_factory):
    return import_poses(
        shared_data / "bird_capture" / "sparse" / "0", tmp_path_factory.mktemp("align") / "bird"
    ).root


@pytest.fixture()
def bird(bird_import, tmp_path):
    """A fresh copy of the imported bird dataset (transforms.json + points; images shared)."""
    dataset = load_dataset(bird_import)
    (tmp_path / "sparse_points.ply").write_bytes((bird_import / "sparse_points.ply").read_bytes())
    dataset.root = tmp_path
    for frame in dataset.frames:
        frame.image_path = tmp_path / "images" / frame.image_path.name
    shutil.copytree(bird_import / "images", tmp_path / "images", copy_function=os.link)
    save_dataset(dataset)
    return tmp_path


def test_bird_ground_is_the_table_with_cameras_above_and_looking_level(bird):
    original = load_dataset(bird).poses
    report = align_dataset(bird, AlignConfig())
    dataset = load_dataset(bird)
    centres = dataset.poses[:, :3, 3]
    assert report.up_method == "ground" and report.ground_inliers >= 100
    assert report.tilt_deg < 15
    assert np.all(centres[:, 2] > 0)  # every camera above the table
    assert np.mean(dataset.poses[:, 2, 1]) > 0.95  # camera up axes point along +z
    np.testing.assert_allclose(centres[:, :2].mean(0), 0, atol=1e-9)  # origin under the centroid
    radius = np.median(np.linalg.norm(centres[:, :2], axis=1))
    points, _ = load_sparse_points(dataset)
    bird_points = points[np.linalg.norm(points[:, :2], axis=1) < 0.3 * radius]
    low, median = np.percentile(bird_points[:, 2], [2, 50])
    assert abs(low) < 0.05 * radius  # the figurine stands on z = 0
    assert median > 0.1 * radius  # and rises above it
    # the first camera looks along +x
    forward = -dataset.poses[0, :3, 2]
    assert forward[0] > 0.9 * np.linalg.norm(forward[:2]) and abs(forward[1]) < 1e-9
    # undo: the source poses come back
    np.testing.assert_allclose(source_poses(dataset), original, atol=1e-9)
    assert dataset.extras["alignment"]["metric"] is False


def test_scale_from_camera_height_and_from_a_distance(bird):
    report = align_dataset(bird, AlignConfig.from_cli("auto", "camera-height=1.3"))
    heights = load_dataset(bird).poses[:, 2, 3]
    assert np.median(heights) == pytest.approx(1.3, rel=1e-6) and report.metric
    align_dataset(bird, AlignConfig.from_cli("auto", "distance=0,92,0.8"))
    dataset = load_dataset(bird)
    apart = np.linalg.norm(dataset.poses[0, :3, 3] - dataset.poses[92, :3, 3])
    assert apart == pytest.approx(0.8, rel=1e-9)
    # two alignments composed: world_from_source still maps the imported poses
    original = load_dataset(bird.parent / "bird" if False else bird)
    np.testing.assert_allclose(
        apply_similarity(dataset.world_from_source, source_poses(original)),
        dataset.poses,
        atol=1e-9,
    )


def test_alignment_does_not_depend_on_the_source_frame(bird, tmp_path_factory):
    align_dataset(bird, AlignConfig(seed=3))
    reference = load_dataset(bird).poses

    moved_dir = tmp_path_factory.mktemp("moved")
    dataset = load_dataset(bird)
    rng = np.random.default_rng(7)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    if np.linalg.det(rotation) < 0:
        rotation[:, 0] *= -1
    shuffle = np.eye(4)
    shuffle[:3, :3] = 2.5 * rotation
    shuffle[:3, 3] = [4.0, -1.0, 7.0]
    start = shuffle @ np.linalg.inv(dataset.world_from_source)  # a new, arbitrary SfM frame
    for frame, pose in zip(dataset.frames, apply_similarity(start, dataset.poses), strict=True):
        frame.camera_to_world = pose
    dataset.world_from_source = shuffle
    (moved_dir / "sparse_points.ply").write_bytes((bird / "sparse_points.ply").read_bytes())
    shutil.copytree(bird / "images", moved_dir / "images", copy_function=os.link)
    for frame in dataset.frames:
        frame.image_path = moved_dir / "images" / frame.image_path.name
    dataset.root = moved_dir
    save_dataset(dataset)

    align_dataset(moved_dir, AlignConfig(seed=3))
    aligned = load_dataset(moved_dir).poses
    # the world frame is fixed by the scene, not by the frame the poses came in (up to scale)
    similarity = umeyama(aligned[:, :3, 3], reference[:, :3, 3])
    np.testing.assert_allclose(
        similarity[:3, :3] / np.cbrt(np.linalg.det(similarity[:3, :3])), np.eye(3), atol=1e-6
    )
    np.testing.assert_allclose(similarity[:3, 3], 0, atol=1e-6)


def test_without_points_up_comes_from_the_cameras(shared_data, tmp_path):
    bird = shared_data / "bird_capture"
    llff = import_poses(bird / "poses_bounds.npy", tmp_path / "llff").root
    with pytest.raises(DatasetError, match="no ground plane"):
        align_dataset(llff, AlignConfig(up="ground"))
    with pytest.raises(DatasetError, match="camera-height cannot set the scale"):
        align_dataset(llff, AlignConfig(camera_height=1.0))
    report = align_dataset(llff, AlignConfig.from_cli("auto", "distance=3,50,1.0"))
    assert report.up_method == "cameras"
    dataset = load_dataset(llff)
    assert dataset.poses[:, 2, 3].min() == pytest.approx(0, abs=1e-9)
    assert np.mean(dataset.poses[:, 2, 1]) > 0.95


def test_cli_align_and_bad_scale(bird, capsys):
    assert main(["align", str(bird), "--scale", "camera-height=1.5"]) == 0
    assert "aligned, ground plane" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # a malformed --scale fails while parsing, before any work
        main(["align", str(bird), "--scale", "height=2"])
    assert "--scale height=2: expected camera-height=H or distance=I,J,D" in capsys.readouterr().err
    assert main(["align", str(bird), "--scale", "distance=0,999,1"]) == 1
    assert "frames must be two different indices in 0..183" in capsys.readouterr().err
