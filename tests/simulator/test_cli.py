"""``driveenv rollout`` and ``driveenv drive`` from the command line."""

from __future__ import annotations

import cv2
import pytest

from driveenv.cli import main


def test_rollout_writes_a_video_and_refuses_to_overwrite(synthetic_scene, tmp_path, capsys):
    out = tmp_path / "videos" / "expert.mp4"
    argv = [
        "rollout",
        str(synthetic_scene),
        "--policy",
        "expert",
        "--out",
        str(out),
        "--image-size",
        "32",
        "--max-episode-steps",
        "40",
        "--episodes",
        "2",
    ]
    assert main(argv) == 0
    video = cv2.VideoCapture(str(out))
    ok, frame = video.read()
    assert ok and frame.shape == (256, 512, 3)  # camera view beside the top-down map
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) > 20
    assert "2 episode(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["expert.mp4"]  # no partial file

    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--policy", "random", "--episodes", "1"]) == 0


def test_rollout_reports_bad_input_on_one_line(synthetic_scene, tmp_path, capsys):
    assert main(["rollout", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a.mp4")]) == 1
    assert "scene.json" in capsys.readouterr().err
    assert main(["rollout", str(synthetic_scene), "--out", str(tmp_path / "a.avi")]) == 1
    assert ".mp4" in capsys.readouterr().err
    assert not (tmp_path / "a.mp4").exists()


def test_drive_without_a_display_says_so(synthetic_scene, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["drive", str(synthetic_scene)]) == 1
    error = capsys.readouterr().err
    assert "display" in error and "rollout" in error


@pytest.mark.parametrize("command", ["rollout", "drive"])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "examples:" in capsys.readouterr().out
