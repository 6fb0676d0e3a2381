"""transforms.json read/write: round trip, nerfstudio compatibility, and clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from scene_builder.datasets import (
    SPARSE_POINTS_FILE,
    Camera,
    Frame,
    PosedDataset,
    apply_similarity,
    load_dataset,
    load_sparse_points,
    save_dataset,
)
from scene_builder.errors import DatasetError


@pytest.fixture()
def tiny_dataset(tmp_path, shared_data):
    images = tmp_path / "images"
    images.mkdir()
    frames = []
    camera = Camera(width=544, height=960, fx=906.0, fy=906.0, cx=272.0, cy=480.0, k1=0.01)
    for i, name in enumerate(["001.jpg", "002.jpg", "003.jpg"]):
        shutil.copy(shared_data / "bird_capture" / "images" / name, images / name)
        pose = np.eye(4)
        pose[:3, 3] = [i, 0.5 * i, 1.0]
        frames.append(Frame(images / name, camera, pose))
    return PosedDataset(tmp_path, frames)


def test_round_trip_keeps_cameras_poses_and_alignment(tiny_dataset):
    tiny_dataset.world_from_source = np.diag([2.0, 2.0, 2.0, 1.0])
    save_dataset(tiny_dataset)
    loaded = load_dataset(tiny_dataset.root)
    assert len(loaded) == 3
    assert loaded.camera == tiny_dataset.camera
    np.testing.assert_allclose(loaded.poses, tiny_dataset.poses)
    np.testing.assert_allclose(loaded.world_from_source, tiny_dataset.world_from_source)


def test_written_file_uses_nerfstudio_keys_and_relative_paths(tiny_dataset):
    path = save_dataset(tiny_dataset)
    meta = json.loads(path.read_text())
    for key in ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "p1", "p2"):
        assert key in meta
    assert meta["frames"][0]["file_path"] == "images/001.jpg"
    assert np.asarray(meta["frames"][0]["transform_matrix"]).shape == (4, 4)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda m: m.pop("fl_x"), "missing intrinsics fl_x"),
        (lambda m: m["frames"][1].pop("transform_matrix"), "frames[1]: missing 'transform_matrix'"),
        (lambda m: m["frames"][0].__setitem__("file_path", "images/nope.jpg"), "does not exist"),
        (lambda m: m.__setitem__("frames", []), "non-empty 'frames'"),
    ],
)
def test_malformed_transforms_give_clear_errors(tiny_dataset, corrupt, message):
    path = save_dataset(tiny_dataset)
    meta = json.loads(path.read_text())
    corrupt(meta)
    path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_dataset(tiny_dataset.root)


def test_missing_transforms_names_the_file(tmp_path):
    with pytest.raises(DatasetError, match="transforms.json: no such file"):
        load_dataset(tmp_path)


def test_apply_similarity_keeps_poses_rigid_and_moves_centres(tiny_dataset):
    angle = np.radians(30)
    similarity = np.eye(4)
    similarity[:3, :3] = 2.0 * np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    similarity[:3, 3] = [1.0, 2.0, 3.0]
    moved = apply_similarity(similarity, tiny_dataset.poses)
    rotations = moved[:, :3, :3]
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-12
    )
    centres = tiny_dataset.poses[:, :3, 3]
    np.testing.assert_allclose(moved[:, :3, 3], centres @ similarity[:3, :3].T + similarity[:3, 3])
    back = apply_similarity(np.linalg.inv(similarity), moved)
    np.testing.assert_allclose(back, tiny_dataset.poses, atol=1e-12)


def test_sparse_points_are_returned_in_the_world_frame(tiny_dataset):
    import trimesh

    xyz = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    trimesh.PointCloud(xyz, colors=[[255, 0, 0, 255], [0, 255, 0, 255]]).export(
        tiny_dataset.root / SPARSE_POINTS_FILE
    )
    assert load_sparse_points(tiny_dataset)[0].shape == (2, 3)
    tiny_dataset.world_from_source = np.diag([2.0, 2.0, 2.0, 1.0])
    tiny_dataset.world_from_source[:3, 3] = [0.0, 0.0, 5.0]
    points, colors = load_sparse_points(tiny_dataset)
    np.testing.assert_allclose(points, [[0, 0, 5], [2, 4, 11]])
    np.testing.assert_array_equal(colors, [[255, 0, 0], [0, 255, 0]])
