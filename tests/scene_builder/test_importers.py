"""import-poses: the bird's COLMAP model and LLFF file agree; conventions; text models; errors."""

from __future__ import annotations

import json

import numpy as np
import pycolmap
import pytest

from driveenv.cli import main
from scene_builder.datasets import load_dataset, load_sparse_points
from scene_builder.errors import DatasetError, PoseError
from scene_builder.importers import import_poses


@pytest.fixture(scope="module")
def bird(shared_data):
    return (shared_data / "bird_capture").resolve()  # importers report resolved paths


@pytest.fixture(scope="module")
def colmap_import(bird, tmp_path_factory):
    return import_poses(bird / "sparse" / "0", tmp_path_factory.mktemp("imports") / "colmap")


def test_colmap_and_llff_imports_give_the_same_cameras(bird, colmap_import, tmp_path):
    llff = import_poses(bird / "poses_bounds.npy", tmp_path / "llff")
    assert len(llff) == len(colmap_import) == 184
    assert [f.image_path.name for f in llff.frames] == [
        f.image_path.name for f in colmap_import.frames
    ]
    np.testing.assert_allclose(llff.poses, colmap_import.poses, atol=1e-9)
    # LLFF keeps a single focal (the first camera's); COLMAP has one camera per image here
    first = colmap_import.frames[0].camera
    for frame in llff.frames:
        camera = frame.camera
        assert (camera.width, camera.height, camera.cx, camera.cy) == (544, 960, 272.0, 480.0)
        assert camera.fx == pytest.approx(first.fx, abs=1e-9)
    assert llff.extras["depth_bounds"][0] > 0


def test_poses_follow_the_opengl_convention(colmap_import):
    points, _ = load_sparse_points(colmap_import)
    target = np.median(points, axis=0)  # the bird on the table, which every camera looks at
    world_to_camera = np.linalg.inv(colmap_import.poses)
    in_camera = world_to_camera[:, :3, :3] @ target + world_to_camera[:, :3, 3]
    assert np.all(in_camera[:, 2] < 0)  # OpenGL cameras look down -z
    # and it projects inside the image: pixel column = cx + fx * x / -z
    camera = colmap_import.frames[0].camera
    column = camera.cx + camera.fx * in_camera[:, 0] / -in_camera[:, 2]
    assert np.mean((column > 0) & (column < camera.width)) > 0.95


def test_dataset_layout_and_sparse_points(colmap_import):
    root = colmap_import.root
    assert (root / "transforms.json").is_file() and (root / "colmap" / "images.bin").is_file()
    assert len(list((root / "images").iterdir())) == 184
    points, colors = load_sparse_points(colmap_import)
    assert points.shape == (6271, 3) and colors.dtype == np.uint8
    reloaded = load_dataset(root)
    np.testing.assert_allclose(reloaded.poses, colmap_import.poses)


def test_text_model_imports_like_the_binary_one(bird, colmap_import, tmp_path):
    text_model = tmp_path / "text"
    text_model.mkdir()
    pycolmap.Reconstruction(str(bird / "sparse" / "0")).write_text(str(text_model))
    assert (text_model / "images.txt").is_file()
    dataset = import_poses(text_model, tmp_path / "out", images=bird / "images")
    np.testing.assert_allclose(dataset.poses, colmap_import.poses, atol=1e-6)


def test_transforms_json_round_trips_and_missing_fields_leave_nothing(colmap_import, tmp_path):
    again = import_poses(colmap_import.root / "transforms.json", tmp_path / "again")
    np.testing.assert_allclose(again.poses, colmap_import.poses)
    assert again.frames[5].camera == colmap_import.frames[5].camera

    broken = tmp_path / "broken"
    broken.mkdir()
    meta = json.loads((colmap_import.root / "transforms.json").read_text())
    for frame in meta["frames"]:
        frame.pop("fl_x", None)
    meta.pop("fl_x", None)
    for frame in meta["frames"]:
        frame["file_path"] = str(colmap_import.root / frame["file_path"])
    (broken / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(
        DatasetError, match=r"transforms.json: frames\[0\]: missing intrinsics fl_x"
    ):
        import_poses(broken / "transforms.json", tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_errors_name_the_problem(bird, colmap_import, tmp_path, capsys):
    with pytest.raises(
        PoseError, match="holds no COLMAP model, poses_bounds.npy or transforms.json"
    ):
        import_poses(bird / "images", tmp_path / "x")
    with pytest.raises(DatasetError, match="--overwrite"):
        import_poses(bird / "sparse" / "0", colmap_import.root)
    bad = tmp_path / "poses_bounds.npy"
    np.save(bad, np.zeros((4, 12)))
    with pytest.raises(PoseError, match=r"expected shape \(N, 17\)"):
        import_poses(bad, tmp_path / "y", images=bird / "images")
    assert main(["import-poses", str(tmp_path / "missing"), "--out", str(tmp_path / "z")]) == 1
    assert "missing: no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_sources_are_recognised_with_their_images(bird, colmap_import):
    from scene_builder.importers import identify_source

    project = identify_source(bird)  # a COLMAP project folder: sparse/0 wins over the .npy
    assert (project.kind, project.path, project.images) == (
        "colmap",
        bird / "sparse" / "0",
        bird / "images",
    )
    llff = identify_source(bird / "poses_bounds.npy")
    assert (llff.kind, llff.images) == ("llff", bird / "images")
    ours = identify_source(colmap_import.root)  # a DriveEnv dataset: its transforms.json wins
    assert (ours.kind, ours.path) == ("nerfstudio", colmap_import.root / "transforms.json")


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (
            lambda m: m["frames"][3].__setitem__("fl_x", float("nan")),
            "frames[3]: intrinsic fl_x is nan",
        ),
        (
            lambda m: m["frames"][0]["transform_matrix"].__setitem__(1, [0, 1]),
            "frames[0]: 'transform_matrix' must be",
        ),
        (lambda m: m.__setitem__("driveenv", [1, 2]), "'driveenv' must be an object"),
        (
            lambda m: m["driveenv"].__setitem__("world_from_source", [[float("nan")] * 4] * 4),
            "holds a NaN",
        ),
    ],
)
def test_bad_transforms_exit_1_with_one_line_and_nothing_written(
    colmap_import, tmp_path, capsys, corrupt, message
):
    meta = json.loads((colmap_import.root / "transforms.json").read_text())
    for frame in meta["frames"]:
        frame["file_path"] = str(colmap_import.root / frame["file_path"])
    corrupt(meta)
    source = tmp_path / "transforms.json"
    source.write_text(json.dumps(meta))
    assert main(["import-poses", str(source), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["transforms.json"]


def test_llff_with_a_negative_focal_is_refused(bird, tmp_path):
    data = np.load(bird / "poses_bounds.npy")
    data[5, 14] = -data[5, 14]  # the focal of the sixth pose
    bad = tmp_path / "poses_bounds.npy"
    np.save(bad, data)
    with pytest.raises(PoseError, match="each must be finite and positive"):
        import_poses(bad, tmp_path / "out", images=bird / "images")
    assert not (tmp_path / "out").exists()
