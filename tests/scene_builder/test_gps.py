"""``--scale gps``: the street's metric scale from the GPS positions in lund_street's EXIF.

lund_street's photos carry both the standard EXIF GPS IFD and Mapillary's JSON tags; the last
three repeat one fix (the receiver did not update). The stored SfM model of the walk
(tests/scene_builder/data/lund_half_sfm) is scaled from them; the bird's frames and the dashcam
video carry no GPS.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scene_builder.align import AlignConfig
from scene_builder.datasets import load_dataset
from scene_builder.errors import DatasetError
from scene_builder.gps import (
    EARTH_RADIUS,
    GPS_IFD,
    IMAGE_DESCRIPTION,
    check_source,
    read_fix,
    read_track,
)

LUND_MODEL = Path(__file__).parent / "data" / "lund_half_sfm"


@pytest.fixture(scope="module")
def lund_posed(shared_data, tmp_path_factory):
    """lund_street at 512 x 384 (EXIF kept by the capture) with the stored poses, not aligned."""
    from scene_builder.capture import CaptureConfig, capture
    from scene_builder.importers import import_poses

    root = tmp_path_factory.mktemp("lund_gps")
    config = CaptureConfig(downscale=2.0, min_sharpness=0.0)
    capture(shared_data / "lund_street" / "images", root / "captured", config)
    return import_poses(LUND_MODEL, root / "posed", images=root / "captured" / "images").root


def _metres(a, b) -> float:
    """Distance between two fixes on the local tangent plane (as the module converts them)."""
    latitude = np.radians((a.latitude + b.latitude) / 2)
    east = np.radians(a.longitude - b.longitude) * np.cos(latitude)
    return float(EARTH_RADIUS * np.hypot(east, np.radians(a.latitude - b.latitude)))


def test_a_fix_comes_from_the_gps_ifd_and_else_from_mapillarys_tags(shared_data, tmp_path):
    image = shared_data / "lund_street" / "images" / "05.jpg"
    fix = read_fix(image)
    # 55 deg 41' 53.89" N, 13 deg 11' 42.35" E; Mapillary's own tags say 55.698305, 13.195098
    assert fix.latitude == pytest.approx(55 + 41 / 60 + 53.89 / 3600, abs=1e-9)
    assert fix.longitude == pytest.approx(13 + 11 / 60 + 42.35 / 3600, abs=1e-9)
    with Image.open(image) as source:
        exif = source.getexif()
        mapillary = json.loads(exif[IMAGE_DESCRIPTION])
        del exif[GPS_IFD]
        source.save(tmp_path / "no_ifd.jpg", exif=exif.tobytes())
        del exif[IMAGE_DESCRIPTION]
        source.save(tmp_path / "no_gps.jpg", exif=exif.tobytes())
    fallback = read_fix(tmp_path / "no_ifd.jpg")
    assert fallback.latitude == float(mapillary["MAPLatitude"])
    assert fallback.accuracy == float(mapillary["MAPGPSAccuracyMeters"])
    assert _metres(fix, fallback) < 1.0  # both tags hold the same position
    assert read_fix(tmp_path / "no_gps.jpg") is None


def test_gps_scale_puts_the_street_at_its_gps_length(lund_posed, tmp_path, capsys):
    from driveenv.cli import main

    folder = tmp_path / "lund"
    shutil.copytree(lund_posed, folder)
    assert main(["align", str(folder), "--scale", "gps"]) == 0
    assert "GPS fit residual" in capsys.readouterr().out
    dataset = load_dataset(folder)
    alignment = dataset.extras["alignment"]
    assert alignment["metric"] and alignment["config"]["gps"]
    gps = alignment["gps"]
    # the last three photos repeat one fix: only the first of them measures
    assert (gps["tagged"], gps["frames"]) == (29, 27)
    # the street end to end (first photo to the last fresh fix), by the cameras and by GPS
    images = [frame.image_path for frame in dataset.frames]
    by_gps = _metres(read_fix(images[0]), read_fix(images[26]))
    centres = dataset.poses[:, :3, 3]
    by_cameras = float(np.linalg.norm(centres[26, :2] - centres[0, :2]))
    assert 150 < by_gps < 210
    assert by_cameras == pytest.approx(by_gps, rel=0.15)
    # the cameras sit on the GPS track within the receiver's 5 m accuracy, and a walker's
    # camera comes out at a walker's height
    assert gps["residual_m"] < 5.0
    assert 1.2 < alignment["camera_height"] < 2.5


def test_images_without_enough_gps_are_refused_with_the_flag_to_use(shared_data, tmp_path):
    lund = sorted((shared_data / "lund_street" / "images").glob("*.jpg"))
    bird = sorted((shared_data / "bird_capture" / "images").glob("*.jpg"))
    cases = (
        (bird, "none of its 184 images has a GPS position"),
        (lund[:2], "only 2 of 2 images carry a distinct GPS position (need 3)"),
        (lund[26:], "only 1 of 3 images carry a distinct GPS position"),  # one repeated fix
    )
    for paths, expected in cases:
        with pytest.raises(DatasetError, match="--scale gps") as error:
            read_track(paths, "images")
        assert expected in str(error.value) and "--scale camera-height=H" in str(error.value)
    # photos 3 to 6 lie within 10 m of each other: too close against a 5 m fix
    track = read_track(lund[2:6], "images")
    with pytest.raises(DatasetError, match="too short against their 5.0 m accuracy"):
        track.check_span("images")
    read_track(lund, "images").check_span("images")  # the whole street: 180 m


def test_build_scene_refuses_gps_from_a_video_or_untagged_photos_before_any_stage(
    shared_data, tmp_path, capsys
):
    from driveenv.cli import main

    for source, expected in (
        (shared_data / "dashcam_highway" / "test_video.mp4", "decoded from a video carry no EXIF"),
        (shared_data / "bird_capture" / "images", "none of its 184 images has a GPS position"),
    ):
        out = tmp_path / "out"
        assert main(["build-scene", str(source), "--out", str(out), "--scale", "gps"]) == 1
        message = capsys.readouterr().err.strip().splitlines()[-1]
        assert expected in message and "--scale camera-height=H" in message
        assert not out.exists() and not (tmp_path / "out.build").exists()
    assert check_source(shared_data / "lund_street" / "images").span > 150


def test_the_python_build_refuses_gps_from_a_video_before_any_stage(shared_data, tmp_path):
    from scene_builder.build import BuildConfig, build_scene

    video = shared_data / "dashcam_highway" / "test_video.mp4"
    with pytest.raises(DatasetError, match="carry no EXIF"):
        build_scene(video, tmp_path / "out", BuildConfig(scale="gps"))
    assert list(tmp_path.iterdir()) == []


def test_scale_gps_parses_and_excludes_the_other_scales():
    config = AlignConfig.from_cli("auto", "gps")
    assert config.gps and config.camera_height is None and config.distance is None
    assert not AlignConfig.from_cli("auto", "camera-height=1.6").gps
    for wrong in ("gps=1", "GPS"):
        with pytest.raises(DatasetError, match=f"--scale {wrong}: expected"):
            AlignConfig.from_cli("auto", wrong)
    with pytest.raises(DatasetError, match="one of camera-height, distance or gps"):
        AlignConfig(camera_height=1.6, gps=True).validate()


def test_align_on_frames_of_a_video_says_they_carry_no_gps(shared_data, tmp_path):
    from scene_builder.capture import MIN_FRAMES, CaptureConfig, capture
    from scene_builder.datasets import Camera, Frame, PosedDataset
    from scene_builder.gps import gps_scale

    config = CaptureConfig(max_frames=MIN_FRAMES, downscale=8.0, min_sharpness=0.0)
    root = capture(
        shared_data / "dashcam_highway" / "test_video.mp4", tmp_path / "dash", config
    ).root
    camera = Camera(160, 90, 100.0, 100.0, 80.0, 45.0)
    frames = [Frame(path, camera, np.eye(4)) for path in sorted((root / "images").glob("*.jpg"))]
    dataset = PosedDataset(root, frames)
    with pytest.raises(DatasetError, match="frames decoded from a video carry no EXIF, so no GPS"):
        gps_scale(dataset, np.zeros((len(frames), 3)), np.array([0.0, 0.0, 1.0]))
