"""build-scene: stage caching and resuming, and the whole pipeline on the real bird capture."""

from __future__ import annotations

import pytest

from scene_builder.build import STAGES, BuildConfig, SceneBuild
from scene_builder.errors import BundleError


class Interrupted(Exception):
    pass


@pytest.fixture
def counting_stages(monkeypatch):
    """Replace every stage's work with a call counter; 'fail_at' makes one stage raise once."""
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
