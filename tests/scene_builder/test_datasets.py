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


def _set(path, value):
    """A corruption that sets ``meta[path[0]][path[1]]... = value``."""

    def corrupt(meta):
        target = meta
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return corrupt


# The cases (each a one-line DatasetError naming the file and, where there is one, the frame).
BAD_VALUES = [
    (
        ("frames", 1, "transform_matrix"),
        [[1, 0, 0, 0], [0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        "frames[1]: 'transform_matrix' must be",
    ),
    (
        ("frames", 1, "transform_matrix"),
        [[1, 0, 0, "x"], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        "frames[1]: 'transform_matrix' holds something that is not a number",
    ),
    (
        ("frames", 0, "transform_matrix"),
        [["1", 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        "frames[0]: 'transform_matrix' holds something",
    ),
    (("frames", 0, "transform_matrix"), "identity", "frames[0]: 'transform_matrix' must be"),
    (
        ("frames", 2, "transform_matrix", 0, 3),
        float("nan"),
        "frames[2]: 'transform_matrix' holds a NaN",
    ),
    (("frames", 2, "transform_matrix", 3), [0, 0, 1, 1], "must end with the row 0 0 0 1"),
    (
        ("driveenv", "world_from_source"),
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1], [0, 0, 0, 1]],
        "'driveenv.world_from_source' must be a 4x4",
    ),
    (("driveenv",), [1, 2], "'driveenv' must be an object, got list"),
    (
        ("driveenv", "world_from_source"),
        [[float("nan")] * 4] * 3 + [[0, 0, 0, 1]],
        "'driveenv.world_from_source' holds a NaN",
    ),
    (("driveenv", "world_from_source"), np.diag([1.0, 1, -1, 1]).tolist(), "positive scale"),
    (("frames", 1, "fl_x"), float("nan"), "frames[1]: intrinsic fl_x is nan, must be finite"),
    (("fl_x",), -906.0, "frames[0]: focal length fl_x is -906.0, must be positive"),
    (("w",), 0, "frames[0]: image size 0x960 must be at least 1x1"),
    (("h",), 960.5, "frames[0]: h is 960.5, not a whole number"),
    (("cx",), "272", "frames[0]: intrinsic cx is '272', not a number"),
    (("cy",), 2000.0, "principal point cy is 2000.0, outside the image"),
    (("k1",), float("inf"), "intrinsic k1 is inf, must be finite"),
    (("frames", 0, "file_path"), 7, "frames[0]: missing 'file_path'"),
    (("frames", 0, "file_path"), "images/\x00.jpg", "frames[0]: 'file_path' holds a NUL"),
]


@pytest.mark.parametrize("where, value, message", BAD_VALUES)
def test_bad_values_are_refused_with_the_frame_named(tiny_dataset, where, value, message):
    path = save_dataset(tiny_dataset)
    meta = json.loads(path.read_text())
    _set(where, value)(meta)
    path.write_text(json.dumps(meta))  # NaN / Infinity as Python's json writes them
    with pytest.raises(DatasetError) as caught:
        load_dataset(tiny_dataset.root)
    text = str(caught.value)
    assert message in text and text.startswith(str(path)) and "\n" not in text


def test_negative_focal_with_zero_width_says_what_is_wrong(tiny_dataset):
    """Before validation this reached field training as 'all frames must have the same size'."""
    path = save_dataset(tiny_dataset)
    meta = json.loads(path.read_text())
    meta["frames"][2].update({"fl_x": -5.0, "w": 0})
    path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"frames\[2\]: image size 0x960"):
        load_dataset(tiny_dataset.root)
