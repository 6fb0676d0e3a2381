"""``driveenv rollout --agent RUN``: a trained agent drives the video, on its own observations."""

from __future__ import annotations

import cv2

from driveenv.cli import main


def test_rollout_of_a_trained_agent_uses_its_observations(synthetic_scene, tmp_path, capsys):
    run = tmp_path / "ppo"
    train = [
        "train", "ppo", "--scene", str(synthetic_scene), "--obs", "state", "--steps", "64",
        "--checkpoint-every", "64", "--eval-episodes", "1", "--max-episode-steps", "20",
        "--hp", "n_steps=64", "--hp", "batch_size=32", "--hp", "n_epochs=1", "--out", str(run),
    ]  # fmt: skip
    assert main(train) == 0
    out = tmp_path / "ppo.mp4"
    # rollout's own default is rgb+state: a state-only agent drives only if the run's obs is used
    argv = ["rollout", str(synthetic_scene), "--agent", str(run), "--out", str(out)]
    assert main([*argv, "--max-episode-steps", "20", "--image-size", "16"]) == 0
    assert "1 episode(s)" in capsys.readouterr().out
    video = cv2.VideoCapture(str(out))
    assert video.read()[0] and video.get(cv2.CAP_PROP_FRAME_COUNT) > 10
    other = tmp_path / "other.mp4"
    assert (
        main(["rollout", str(synthetic_scene), "--agent", str(tmp_path), "--out", str(other)]) == 1
    )
    assert "not a training run" in capsys.readouterr().err
    assert not other.exists()
