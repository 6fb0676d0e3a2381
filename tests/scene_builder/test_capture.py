"""capture: even sampling, blur rejection, manifest, idempotent re-runs, and bad input."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from driveenv.cli import main
from scene_builder.capture import MIN_FRAMES, CaptureConfig, capture
from scene_builder.errors import CaptureError


@pytest.fixture(scope="module")
def bird_video(shared_data):
    return shared_data / "bird_capture" / "bird.mp4"


def _first_frames(video, count):
    reader = cv2.VideoCapture(str(video))
    frames = [reader.read()[1] for _ in range(count)]
    reader.release()
    return frames


def _write_avi(path, frames):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()


def test_video_is_sampled_evenly_downscaled_and_recorded(bird_video, tmp_path):
    out = tmp_path / "bird"
    result = capture(bird_video, out, CaptureConfig(max_frames=16, downscale=4))
    manifest = json.loads((out / "manifest.json").read_text())
    indices = [f["source_index"] for f in manifest["frames"]]
    assert result.kept == len(indices) == 16 and manifest["decoded"] == 184
    # one frame from the middle half of each window of 184/16 = 11.5 frames
    gaps = np.diff(indices)
    assert indices == sorted(indices) and gaps.min() > 0.5 * 11.5 and gaps.max() < 1.5 * 11.5
    assert indices[0] < 11.5 and indices[-1] >= 184 - 11.5
    first = manifest["frames"][0]
    assert first["timestamp_s"] == pytest.approx(first["source_index"] / 30.0)
    image = cv2.imread(str(out / first["file_path"]))
    assert image.shape == (240, 136, 3)  # 960x544 portrait divided by 4
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        f["file_path"].split("/")[1] for f in manifest["frames"]
    )


def test_same_arguments_do_nothing_and_other_arguments_need_overwrite(bird_video, tmp_path):
    out = tmp_path / "bird"
    config = CaptureConfig(max_frames=10, downscale=8)
    capture(bird_video, out, config)
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert capture(bird_video, out, config).skipped
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    with pytest.raises(CaptureError, match="--overwrite"):
        capture(bird_video, out, CaptureConfig(max_frames=12, downscale=8))
    result = capture(bird_video, out, CaptureConfig(max_frames=12, downscale=8), overwrite=True)
    assert result.kept == 12 and len(list((out / "images").iterdir())) == 12


def test_blurred_frames_are_dropped_relative_to_their_neighbours(shared_data, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    blurred = {"005.jpg", "009.jpg"}
    for number in range(1, 14):
        name = f"{number:03d}.jpg"
        image = cv2.imread(str(shared_data / "bird_capture" / "images" / name))
        image = cv2.resize(image, (136, 240), interpolation=cv2.INTER_AREA)
        if name in blurred:
            image = cv2.GaussianBlur(image, (0, 0), 3.0)
        cv2.imwrite(str(folder / name), image)
    out = tmp_path / "dataset"
    result = capture(folder, out, CaptureConfig(max_frames=50))
    kept = {p.name for p in (out / "images").iterdir()}
    assert result.dropped_blurry == 2
    assert kept == {f"{n:03d}.jpg" for n in range(1, 14)} - blurred


def test_full_size_jpegs_from_a_folder_are_copied_with_their_exif(shared_data, tmp_path):
    folder = tmp_path / "lund"
    folder.mkdir()
    sources = sorted((shared_data / "lund_street" / "images").iterdir())[:MIN_FRAMES]
    for source in sources:
        shutil.copy(source, folder / source.name)
    capture(folder, tmp_path / "out", CaptureConfig(max_frames=MIN_FRAMES, min_sharpness=0.0))
    for source in sources:
        assert (tmp_path / "out" / "images" / source.name).read_bytes() == source.read_bytes()


def test_cli_capture_prints_one_line_and_bad_input_is_one_error_line(bird_video, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["capture", str(bird_video), "--out", str(out), "--max-frames", "12"]
    assert main([*args, "--frame-downscale", "8", "--min-sharpness", "0"]) == 0
    assert "kept 12 frames of 184" in capsys.readouterr().out
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video at all")
    assert main(["capture", str(not_video), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "notes.mp4: not a readable video" in err


@pytest.mark.parametrize("case", ["not_video", "truncated_mp4", "truncated_avi", "three_frames"])
def test_bad_videos_give_a_clear_error_and_leave_nothing(case, bird_video, tmp_path):
    path = tmp_path / "input"
    if case == "not_video":
        path = path.with_suffix(".mp4")
        path.write_bytes(b"\x00" * 1000)
        message = "not a readable video"
    elif case == "truncated_mp4":
        path = path.with_suffix(".mp4")
        data = bird_video.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        message = "truncated or corrupt"
    elif case == "truncated_avi":
        path = path.with_suffix(".avi")
        full = tmp_path / "full.avi"
        _write_avi(full, _first_frames(bird_video, 30))
        data = full.read_bytes()
        path.write_bytes(data[: len(data) * 6 // 10])
        message = "truncated or corrupt video: decoded"
    else:
        path = path.with_suffix(".avi")
        _write_avi(path, _first_frames(bird_video, 3))
        message = f"only 3 frames; at least {MIN_FRAMES}"
    out = tmp_path / "dataset"
    with pytest.raises(CaptureError, match=message) as error:
        capture(path, out, CaptureConfig(max_frames=20, downscale=4))
    assert str(path.name) in str(error.value)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_downscaled_folder_images_keep_their_exif_focal_length(shared_data, tmp_path):
    from PIL import Image

    folder = tmp_path / "lund"
    folder.mkdir()
    for source in sorted((shared_data / "lund_street" / "images").iterdir())[:MIN_FRAMES]:
        shutil.copy(source, folder / source.name)
    capture(folder, tmp_path / "out", CaptureConfig(downscale=4, min_sharpness=0.0))
    written = tmp_path / "out" / "images" / "01.jpg"
    with Image.open(written) as image, Image.open(folder / "01.jpg") as original:
        assert image.size == (256, 192)
        focal_35mm = 0xA405  # FocalLengthIn35mmFilm, what COLMAP turns into a focal prior
        exif_ifd = 0x8769
        assert image.getexif().get_ifd(exif_ifd)[focal_35mm] == 35
        assert original.getexif().get_ifd(exif_ifd)[focal_35mm] == 35


def test_folder_images_are_taken_in_natural_order(shared_data, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in range(1, 13):  # IMG_1 ... IMG_12: plain sorting would put IMG_10 second
        image = cv2.imread(str(shared_data / "bird_capture" / "images" / f"{number:03d}.jpg"))
        cv2.imwrite(str(folder / f"IMG_{number}.jpg"), cv2.resize(image, (68, 120)))
    capture(folder, tmp_path / "out", CaptureConfig(min_sharpness=0.0))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [f["source_file"] for f in manifest["frames"]] == [f"IMG_{n}.jpg" for n in range(1, 13)]


def test_a_dataset_without_a_capture_has_no_manifest(tmp_path):
    from scene_builder.capture import load_manifest

    with pytest.raises(CaptureError, match="manifest.json: no capture manifest"):
        load_manifest(tmp_path)
