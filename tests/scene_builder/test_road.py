"""Road scenes from forward captures: the ground along the path, the road map, the car, the route.

The real captures at small scale: lund_street (a walk down a street) at half size and the
bird's reference poses (an orbit). The forward capture must come out level, with a ground under
its whole path, a drivable corridor along the recorded route and a car-sized vehicle.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest

from scene_builder.align import AlignConfig, align_dataset
from scene_builder.capture import CaptureConfig, capture
from scene_builder.datasets import load_dataset
from scene_builder.geometry.ground import ARENA, ROAD, GroundProfile, RoadPrior, capture_kind

CAMERA_HEIGHT = 1.6


# One SfM run of lund_street at 512 x 384 (sequential matching, global mapper), stored as a
# COLMAP text model without its unmatched keypoints. Structure from motion on this 29-photo walk is
# not repeatable from run to run (the global positioning can put one stretch of the path at another
# scale), and these tests check what the road stages make of a good pose set, not the SfM: its
# path is about 170 m at camera height 1.6 m, where the photos' GPS tags span about 180 m.
LUND_MODEL = Path(__file__).parent / "data" / "lund_half_sfm"


@pytest.fixture(scope="module")
def lund(shared_data, tmp_path_factory):
    """lund_street's 29 photos at 512 x 384 with the stored SfM poses, aligned."""
    from scene_builder.importers import import_poses

    root = tmp_path_factory.mktemp("lund")
    config = CaptureConfig(downscale=2.0, min_sharpness=0.0)
    capture(shared_data / "lund_street" / "images", root / "captured", config)
    folder = import_poses(LUND_MODEL, root / "lund", images=root / "captured" / "images").root
    report = align_dataset(folder, AlignConfig(camera_height=CAMERA_HEIGHT))
    return folder, report


@pytest.mark.slow
def test_an_orbit_is_an_arena_and_a_forward_walk_a_road(shared_data, lund):
    from scene_builder.importers import import_poses

    bird = shared_data / "bird_capture"
    folder, report = lund
    assert report.extras["scene_kind"] == ROAD and report.up_method == "path"
    assert capture_kind(load_dataset(folder).poses) == ROAD
    # the orbit: cameras look across their path
    orbit = import_poses(bird / "sparse" / "0", folder.parent / "bird", images=bird / "images")
    assert capture_kind(load_dataset(orbit.root).poses) == ARENA


@pytest.mark.slow
def test_a_forward_capture_has_a_level_ground_under_its_whole_path(lund):
    folder, report = lund
    dataset = load_dataset(folder)
    prior = RoadPrior.from_dataset(dataset)
    assert prior is not None and prior.metric
    # every camera is close to the given height over the ground fitted under it...
    assert np.median(prior.camera_heights) == pytest.approx(CAMERA_HEIGHT, rel=1e-6)
    assert np.all(np.abs(prior.camera_heights - CAMERA_HEIGHT) < 0.5)
    # ...and the world is level: a street walk does not climb or fall metres over its length
    # (with the cameras' mean up, lund's cameras ranged from +12.6 to -29.9 m)
    heights = dataset.poses[:, 2, 3]
    assert np.ptp(heights) < 0.1 * prior.profile.length
    # the cameras' own up is near +z, and they look roughly level along the road
    assert np.median(dataset.poses[:, 2, 1]) > 0.9
    assert np.all(np.abs(dataset.poses[:, 2, 2]) < 0.5)
    # the path is long enough to drive and metric: a street walk of 29 photos spans tens to a
    # couple of hundred metres, not the kilometres a wrong camera height gives
    assert 10 < prior.profile.length < 300


@pytest.mark.slow
def test_a_dashcam_clip_becomes_a_level_metric_road(shared_data, tmp_path):
    """The driving capture end to end up to the ground: the windscreen clip's 38 frames at
    640 x 360 are posed (video settings), aligned as a road, level, with the camera 1.5 m over a
    ground under the whole path and a path as long as the car drove (about 40 m in 1.5 s)."""
    from scene_builder.sfm import SfmConfig, recover_poses

    folder = tmp_path / "dashcam"
    video = shared_data / "dashcam_highway" / "test_video.mp4"
    capture(video, folder, CaptureConfig(downscale=2.0, min_sharpness=0.0))
    assert recover_poses(folder, SfmConfig()).registered == 38
    report = align_dataset(folder, AlignConfig(camera_height=1.5))
    assert report.extras["scene_kind"] == ROAD
    dataset = load_dataset(folder)
    prior = RoadPrior.from_dataset(dataset)
    assert prior is not None and prior.metric
    assert np.all(np.abs(prior.camera_heights - 1.5) < 0.5)
    assert np.ptp(dataset.poses[:, 2, 3]) < 0.1 * prior.profile.length
    assert 20 < prior.profile.length < 80


def test_ground_profile_heights_and_distances_follow_a_sloping_curve():
    t = np.linspace(0.0, 40.0, 30)
    path = np.stack([t, 0.005 * t**2], axis=1)
    profile = GroundProfile(path, 0.05 * t)
    assert profile.height(np.array([[20.0, 2.0 + 3.0]])) == pytest.approx(1.0, abs=0.05)
    assert profile.distance(np.array([[20.0, 5.0]])) == pytest.approx(3.0 / np.hypot(1, 0.2), 0.05)
    samples = profile.resampled(0.5)
    steps = np.linalg.norm(np.diff(samples, axis=0), axis=1)
    assert np.allclose(steps, steps[0], rtol=0.02) and 0.45 < steps[0] <= 0.5


@pytest.mark.slow
def test_build_scene_on_a_street_writes_a_road_bundle(lund, tmp_path, capsys):
    """build-scene from the posed street: the bundle says road, its recorded route lies on
    drivable cells, its car is 4.5 x 1.8 x 1.5 m, its tasks follow the route."""
    from driveenv.cli import main
    from scene_builder.bundle import load_scene

    folder, _ = lund
    out = tmp_path / "street"
    argv = [
        "build-scene",
        str(folder / "images"),
        "--poses",
        str(LUND_MODEL),
        "--out",
        str(out),
        "--scale",
        f"camera-height={CAMERA_HEIGHT}",
        "--field-steps",
        "10",
        "--field-downscale",
        "8",
        "--tsdf-resolution",
        "64",
        "--target-faces",
        "4000",
        "--render-scale",
        "0.25",
        "--virtual-views",
        "4",
        "--virtual-size",
        "32",
        "--tasks",
        "4",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "scene kind: road" in printed and "100% on drivable cells" in printed
    scene = load_scene(out)
    extras = scene.extras
    assert extras["scene_kind"] == "road"
    assert (extras["vehicle_length"], extras["vehicle_width"], extras["vehicle_height"]) == (
        4.5,
        1.8,
        1.5,
    )
    assert extras["camera_height"] == pytest.approx(CAMERA_HEIGHT, rel=0.2)
    route = np.array(extras["recorded_route"])
    steps = np.linalg.norm(np.diff(route, axis=0), axis=1)
    assert len(route) > 20 and np.all(steps <= 0.5 + 1e-3)  # stored to 0.1 mm
    assert scene.drivable.is_drivable(route).all()
    # the corridor holds the car: drivable at least half the car's width each side of the route
    tangent = np.gradient(route, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1) / np.linalg.norm(tangent, axis=1)[:, None]
    for side in (-1, 1):
        assert scene.drivable.is_drivable(route + side * 0.9 * normal).mean() > 0.95
    # the map is the road, not the area the path encloses or the whole region
    assert scene.drivable.grid.mean() < 0.5
    # tasks: sections of the route, spawn on it facing along it, goal further along
    assert len(scene.spawns) == 4
    for spawn, goal, path in zip(scene.spawns, scene.goals, scene.routes, strict=True):
        assert np.hypot(*(path[0] - [spawn.x, spawn.y])) < 1e-6
        assert np.hypot(*(path[-1] - [goal.x, goal.y])) < 1e-6
        heading = path[1] - path[0]
        assert np.cos(np.arctan2(heading[1], heading[0]) - spawn.yaw) > 0.99
        assert scene.drivable.is_drivable(path).all()
        assert np.linalg.norm(np.diff(path, axis=0), axis=1).sum() > 3 * 4.5
    meta = json.loads((out / "scene.json").read_text())
    assert meta["extras"]["recorded_route"] == extras["recorded_route"]


def test_a_scale_typo_and_a_bad_region_fail_before_any_stage(tmp_path, capsys):
    from driveenv.cli import main

    images = tmp_path / "images"
    images.mkdir()
    for argv, expected in (
        (["--scale", "camera_height=1.6"], "--scale camera_height=1.6"),
        (["--region-radius", "-3"], "--region-radius -3"),
        (["--road-width", "0"], "--road-width 0"),
    ):
        with pytest.raises(SystemExit) if "camera_height" in argv[1] else nullcontext():
            code = main(["build-scene", str(images), "--out", str(tmp_path / "out"), *argv])
            assert code == 1
        message = capsys.readouterr().err.strip().splitlines()[-1]
        assert expected in message
        assert not (tmp_path / "out.build").exists()
    assert main(["build-scene", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 1
    assert "no such video or image folder" in capsys.readouterr().err
