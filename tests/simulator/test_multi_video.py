"""Rollout videos (one vehicle or a team): complete files only, bad arguments on one line."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.errors import SimulatorError
from simulator.video import VideoFile, checked_video_path


def test_a_video_appears_complete_or_not_at_all(tmp_path):
    frame = np.zeros((32, 48, 3), np.uint8)
    out = tmp_path / "videos" / "team.mp4"
    with pytest.raises(RuntimeError), VideoFile(out, fps=5) as video:
        video.write(frame, repeat=3)
        raise RuntimeError("the policy broke mid-episode")
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no video, no partial file
    with VideoFile(out, fps=5) as video:
        video.write(frame, repeat=10)
    import cv2

    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
    assert int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 48
    capture.release()
    assert [p.name for p in out.parent.iterdir()] == ["team.mp4"]


@pytest.mark.parametrize(
    ("name", "overwrite", "episodes", "message"),
    [("a.gif", False, 1, "must be an .mp4"), ("old.mp4", False, 1, "already exists"),
     ("new.mp4", False, 0, "at least 1")],
)  # fmt: skip
def test_bad_video_arguments_are_one_line_errors(tmp_path, name, overwrite, episodes, message):
    (tmp_path / "old.mp4").write_bytes(b"x")
    with pytest.raises(SimulatorError, match=message):
        checked_video_path(tmp_path / name, overwrite, episodes)
    assert checked_video_path(tmp_path / "old.mp4", True, 1) == tmp_path / "old.mp4"
