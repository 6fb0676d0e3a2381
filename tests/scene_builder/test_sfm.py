"""poses: structure from motion on real captures, scored against the reference COLMAP model."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from scene_builder.align import compare_poses
from scene_builder.capture import CaptureConfig, capture, load_manifest
from scene_builder.datasets import load_dataset, load_sparse_points
from scene_builder.errors import PoseError
from scene_builder.importers import frames_from_reconstruction, read_colmap_model
from scene_builder.sfm import SfmConfig, recover_poses, sequential_pairs

pytestmark = pytest.mark.slow


def test_bird_video_poses_match_the_reference_model(shared_data, tmp_path):
    bird = shared_data / "bird_capture"
    dataset_dir = tmp_path / "bird"
    capture(bird / "bird.mp4", dataset_dir, CaptureConfig(max_frames=40, min_sharpness=0.0))
    # the video path: neighbours, doubling jumps and 8 keyframes that close the orbit
    config = SfmConfig(matcher="sequential", sequential_overlap=5, loop_keyframes=8)
    report = recover_poses(dataset_dir, config)
    assert report.matcher == "sequential"
    assert report.registered >= 0.95 * report.total and report.total == 40
    assert report.mean_reprojection_error < 2.0
    _assert_matches_reference(dataset_dir, bird)
    dataset = load_dataset(dataset_dir)

    # outputs: the COLMAP model, sparse points, the report in transforms.json; a re-run is a no-op
    assert (dataset_dir / "colmap" / "points3D.bin").is_file()
    points, _ = load_sparse_points(dataset)
    assert len(points) == report.points > 100
    assert dataset.extras["sfm"]["registered"] == report.registered
    assert recover_poses(dataset_dir, config).skipped
    with pytest.raises(PoseError, match="--overwrite"):
        recover_poses(dataset_dir, SfmConfig(max_image_size=640))

    # the global mapper (the fallback for captures the incremental one splits), on the same
    # features and matches (the mapper is not among the settings that restart the work)
    report = recover_poses(dataset_dir, replace(config, mapper="global"), overwrite=True)
    assert report.mapper == "global" and report.registered >= 0.95 * report.total
    last_try = report.mapping_tries[-1]
    assert last_try.startswith("global seed") and last_try.endswith(f": {report.registered}")
    _assert_matches_reference(dataset_dir, bird)


def _assert_matches_reference(dataset_dir, bird):
    """The dataset's poses agree with the reference COLMAP model of bird_capture."""
    dataset = load_dataset(dataset_dir)
    manifest = load_manifest(dataset_dir)
    source_index = {f["file_path"].split("/")[1]: f["source_index"] for f in manifest["frames"]}
    reference = {
        frame.image_path.name: frame.camera_to_world
        for frame in frames_from_reconstruction(read_colmap_model(bird / "sparse" / "0"), bird)
    }
    matched = np.stack(
        [reference[f"{source_index[f.image_path.name] + 1:03d}.jpg"] for f in dataset.frames]
    )
    comparison = compare_poses(dataset.poses, matched)
    assert comparison.median_rotation_deg < 2.0
    assert comparison.median_position_share < 0.02


def test_lund_street_registers_at_least_25_of_29(shared_data, tmp_path):
    dataset_dir = tmp_path / "lund"
    capture(shared_data / "lund_street" / "images", dataset_dir, CaptureConfig(min_sharpness=0.0))
    # features at 800 px: at 512 px this forward walk registers only about 17 frames
    report = recover_poses(dataset_dir, SfmConfig(max_image_size=800, max_features=2048))
    assert report.total == 29
    assert report.registered >= 25, report.summary()
    assert len(report.failed_frames) == report.total - report.registered


def _blank_and_noise(images, shared_data):
    rng = np.random.default_rng(0)
    for index in range(8):
        image = (
            np.full((240, 320, 3), 128, np.uint8)
            if index % 2
            else rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        )
        cv2.imwrite(str(images / f"{index:02d}.png"), image)


def _unrelated(images, shared_data):
    """Four sides of the bird and four far-apart street views: no two images overlap enough."""
    for number in (1, 47, 93, 139):
        image = cv2.imread(str(shared_data / "bird_capture" / "images" / f"{number:03d}.jpg"))
        cv2.imwrite(str(images / f"bird{number:03d}.jpg"), cv2.resize(image, (272, 480)))
    for number in (1, 10, 19, 28):
        image = cv2.imread(str(shared_data / "lund_street" / "images" / f"{number:02d}.jpg"))
        cv2.imwrite(str(images / f"lund{number:02d}.jpg"), cv2.resize(image, (512, 384)))


@pytest.mark.parametrize("make_images", [_blank_and_noise, _unrelated])
def test_images_without_a_model_give_a_pose_error_and_leave_the_dataset_alone(
    make_images, shared_data, tmp_path
):
    images = tmp_path / "dataset" / "images"
    images.mkdir(parents=True)
    make_images(images, shared_data)
    with pytest.raises(PoseError, match="images: structure from motion"):
        recover_poses(tmp_path / "dataset", SfmConfig(max_image_size=512))
    assert sorted(p.name for p in (tmp_path / "dataset").iterdir()) == ["images"]


def test_dashcam_clip_is_posed_along_the_road_with_the_video_defaults(shared_data, tmp_path):
    """A forward capture: every frame registered, cameras on a line, looking along it."""
    dataset_dir = tmp_path / "dashcam"
    video = shared_data / "dashcam_highway" / "test_video.mp4"
    capture(video, dataset_dir, CaptureConfig(downscale=2.0, min_sharpness=0.0))
    report = recover_poses(dataset_dir, SfmConfig())
    assert report.matcher == "sequential" and report.mapper == "global", report.summary()
    assert report.registered == report.total == 38, report.summary()
    poses = load_dataset(dataset_dir).poses
    centres = poses[:, :3, 3]
    offsets = centres - centres.mean(axis=0)
    spread = np.linalg.svd(offsets, compute_uv=False) ** 2
    assert spread[0] / spread.sum() > 0.9  # the path is close to a line
    travel = centres[-1] - centres[0]
    travel /= np.linalg.norm(travel)
    looking = -poses[:, :3, 2]  # OpenGL cameras look down -z
    assert np.median(looking @ travel) > 0.8  # a windscreen camera looks where the car goes


def test_sequential_pairs_on_a_short_clip_stay_far_from_exhaustive():
    pairs = sequential_pairs(38, overlap=10, keyframes=30)
    assert len(pairs) < 0.6 * (38 * 37 / 2)
    assert (0, 1) in pairs and (27, 37) in pairs


def test_sequential_pairs_cover_neighbours_and_close_the_loop():
    pairs = set(sequential_pairs(120, overlap=5, keyframes=12))
    assert all((i, i + 1) in pairs and (i, i + 5) in pairs for i in range(114))
    assert (0, 110) in pairs  # first and last keyframes: the loop closes
    assert all(i < j for i, j in pairs)
    assert len(pairs) < 120 * 119 / 2 / 5  # far fewer than exhaustive


def test_an_interrupted_run_keeps_its_work_and_the_next_run_resumes(
    shared_data, tmp_path, monkeypatch
):
    import pycolmap

    from scene_builder import sfm

    images = tmp_path / "bird" / "images"
    images.mkdir(parents=True)
    for number in range(1, 40, 3):  # 13 neighbouring views, 6 degrees apart
        image = cv2.imread(str(shared_data / "bird_capture" / "images" / f"{number:03d}.jpg"))
        cv2.imwrite(str(images / f"{number:03d}.jpg"), cv2.resize(image, (272, 480)))
    config = SfmConfig(max_image_size=480)

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(sfm._Stages, "map", interrupted)
    with pytest.raises(KeyboardInterrupt):
        recover_poses(tmp_path / "bird", config)
    monkeypatch.undo()
    database = tmp_path / "bird" / ".sfm" / "database.db"
    assert database.is_file() and not (tmp_path / "bird" / "transforms.json").exists()

    extracted_before = []
    original_extract = sfm._Stages.extract

    def counting_extract(self):
        opened = pycolmap.Database.open(self.database)
        extracted_before.append(opened.num_keypoints())
        opened.close()
        original_extract(self)

    monkeypatch.setattr(sfm._Stages, "extract", counting_extract)
    report = recover_poses(tmp_path / "bird", config)
    assert extracted_before[0] > 13 * 100  # the features of the first run were still there
    assert report.registered >= 12
    assert (tmp_path / "bird" / "transforms.json").is_file()
    # a folder of photos (no video manifest): exhaustive matching with the thorough settings
    assert report.matcher == "exhaustive" and report.pairs == 13 * 12 // 2
    assert report.settings.startswith("photos settings: SIFT upsampled, guided")
