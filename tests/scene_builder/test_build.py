"""build-scene: stage caching and resuming, and the whole pipeline on the real bird capture."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scene_builder.build import STAGES, BuildConfig, SceneBuild
from scene_builder.errors import BundleError


class Interrupted(Exception):
    pass


@pytest.fixture
def counting_stages(monkeypatch, tmp_path):
    """Replace every stage's work with a call counter; 'fail_at' makes one stage raise once.
    The inputs the tests name exist (a build refuses a missing input before any stage)."""
    for name in ("video.mp4", "v.mp4"):
        (tmp_path / name).touch()
    calls: list[str] = []
    fail_at: set[str] = set()

    def make(stage):
        def run(self, report):
            calls.append(stage)
            if stage in fail_at:
                fail_at.discard(stage)
                raise Interrupted(stage)
            self.folder(stage).mkdir(parents=True, exist_ok=True)
            if stage == "bundle":
                self.out.mkdir(parents=True, exist_ok=True)

        return run

    for stage in STAGES:
        monkeypatch.setattr(SceneBuild, f"_stage_{stage}", make(stage))
    return calls, fail_at


def test_an_interrupted_build_resumes_at_the_stage_that_stopped(tmp_path, counting_stages):
    calls, fail_at = counting_stages
    fail_at.add("field")
    build = SceneBuild(
        tmp_path / "video.mp4", tmp_path / "scene", BuildConfig(scale="camera-height=0.07")
    )
    with pytest.raises(Interrupted):
        build.run(report=lambda *_: None)
    assert calls == ["frames", "poses", "align", "field"]
    calls.clear()
    again = SceneBuild(
        tmp_path / "video.mp4", tmp_path / "scene", BuildConfig(scale="camera-height=0.07")
    )
    again.run(report=lambda *_: None)
    assert calls == ["field", "mesh", "bundle"]
    assert [r.cached for r in again.results] == [True, True, True, False, False, False]


def test_a_changed_option_reruns_its_stage_and_all_later_ones(tmp_path, counting_stages):
    calls, _ = counting_stages
    config = BuildConfig(scale="camera-height=0.07")
    SceneBuild(tmp_path / "v.mp4", tmp_path / "scene", config).run(report=lambda *_: None)
    calls.clear()
    with pytest.raises(BundleError, match="already exists"):
        SceneBuild(tmp_path / "v.mp4", tmp_path / "scene", config).run(report=lambda *_: None)
    config.mesh.target_faces = 5000
    SceneBuild(tmp_path / "v.mp4", tmp_path / "scene", config).run(
        overwrite=True, report=lambda *_: None
    )
    assert calls == ["mesh", "bundle"]
    calls.clear()
    config.scale = "camera-height=0.1"
    SceneBuild(tmp_path / "v.mp4", tmp_path / "scene", config).run(
        overwrite=True, report=lambda *_: None
    )
    assert calls == ["align", "field", "mesh", "bundle"]


def test_new_field_sizes_retrain_the_field(tmp_path, counting_stages, monkeypatch):
    """The field stage's key is the whole training config: a build folder made before the
    defaults changed (e.g. a narrower decoder) does not reuse its old field."""
    from scene_builder import train

    calls, _ = counting_stages
    config = BuildConfig(scale="camera-height=0.07")
    SceneBuild(tmp_path / "v.mp4", tmp_path / "scene", config).run(report=lambda *_: None)
    calls.clear()
    original = train.TrainConfig

    def narrower_decoder(**options):
        trained = original(**options)
        trained.field = dataclasses.replace(trained.field, hidden_width=16)
        return trained

    monkeypatch.setattr(train, "TrainConfig", narrower_decoder)
    SceneBuild(tmp_path / "v.mp4", tmp_path / "scene", config).run(
        overwrite=True, report=lambda *_: None
    )
    assert calls == ["field", "mesh", "bundle"]


@pytest.mark.slow
def test_build_scene_end_to_end_on_the_bird_capture(shared_data, tmp_path, capsys):
    """Reference poses -> align -> a field trained for seconds -> geometry -> bundle, via the CLI.

    A field trained for seconds gives no usable depth, so the geometry comes from the sparse
    points (``--geometry points``); the field path is tested on an analytic field in test_mesh.
    """
    from driveenv.cli import main
    from scene_builder.bundle import load_scene
    from scene_builder.datasets import load_dataset

    bird = shared_data / "bird_capture"
    out = tmp_path / "bird"
    argv = [
        "build-scene",
        str(bird / "images"),
        "--poses",
        str(bird / "sparse" / "0"),
        "--out",
        str(out),
        "--scale",
        "camera-height=0.074",
        "--field-steps",
        "10",
        "--field-downscale",
        "16",
        "--tsdf-resolution",
        "64",
        "--target-faces",
        "4000",
        "--max-training-views",
        "12",
        "--render-scale",
        "0.125",
        "--tasks",
        "3",
        "--geometry",
        "points",
    ]
    assert main(argv) == 0
    scene = load_scene(out)
    dataset = load_dataset(scene.dataset_dir)
    assert len(dataset) == 184
    assert np.allclose(scene.world_from_source, dataset.world_from_source)
    # the bundle's frames are at the field's training size (1/16: 34 x 60), cameras scaled alike
    import cv2

    assert (dataset.camera.width, dataset.camera.height) == (34, 60)
    assert cv2.imread(str(dataset.frames[5].image_path)).shape[:2] == (60, 34)
    assert dataset.frames[5].image_path.parent == scene.dataset_dir / "images"
    # world frame: cameras about 7.4 cm above the ground, orbiting within the arena region
    heights = dataset.poses[:, 2, 3]
    assert abs(np.median(heights) - 0.074) < 1e-3
    region = scene.extras["region"]
    assert 0.3 < region["radius"] < 0.7
    assert scene.load_field().backend_name == "embedded"
    assert not (scene.field_dir / "train_state.pt").exists()  # training state is not shipped
    assert len(scene.spawns) == 3 and scene.drivable.grid.any()
    # geometry from the sparse points: the bird, where the cameras look, blocks the map
    centre = np.array(region["centre"])
    assert not scene.drivable.is_drivable(centre[None]).any()
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ring = centre + 0.12 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert scene.drivable.is_drivable(ring).mean() >= 0.75
    # a second run finds every stage cached and refuses to overwrite without --overwrite
    capsys.readouterr()
    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert capsys.readouterr().out.count("cached in") == 5


def test_mesh_options_reach_the_mesh_config_and_bad_values_fail_in_one_line(tmp_path, capsys):
    """--min-surface-opacity and --no-ground-prior set MeshConfig; an opacity outside [0, 1] is a
    one-line error before any field is loaded, and nothing is written."""
    import argparse

    from common.config_cli import add_config, make_config
    from driveenv.cli import main
    from scene_builder.mesh import MeshConfig

    parser = argparse.ArgumentParser()
    add_config(parser, MeshConfig, exclude=("virtual_rings",))
    args = parser.parse_args(["--min-surface-opacity", "0.3", "--no-ground-prior"])
    config = make_config(MeshConfig, args)
    assert config.min_surface_opacity == 0.3 and config.ground_prior is False
    assert make_config(MeshConfig, parser.parse_args([])).ground_prior is True

    out = tmp_path / "scene"
    code = main(
        ["mesh", str(tmp_path / "field"), "--out", str(out), "--min-surface-opacity", "1.5"]
    )
    message = capsys.readouterr().err.strip()
    assert code == 1 and "--min-surface-opacity 1.5" in message and "\n" not in message
    assert not out.exists()
