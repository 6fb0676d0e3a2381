"""``driveenv train``: run.json, checkpoints, resume after an interruption, reload, bad checkpoints."""

import json

import numpy as np
import pytest

import agents.train as train_module
from agents import load_agent
from agents.errors import AgentError, CheckpointError
from driveenv.cli import main
from simulator import EnvConfig, make_env

SMALL_PPO = ["--hp", "n_steps=64", "--hp", "batch_size=32", "--hp", "n_epochs=1"]


def _train_args(scene, out, steps=128, *extra):
    return [
        "train", "ppo", "--scene", str(scene), "--obs", "state", "--steps", str(steps),
        "--checkpoint-every", "64", "--eval-episodes", "2", "--max-episode-steps", "50",
        "--out", str(out), *SMALL_PPO, *extra,
    ]  # fmt: skip


def test_train_resume_reload_and_refuse(tmp_path, synthetic_scene, monkeypatch, capsys):
    out = tmp_path / "run"
    real_save = train_module._save
    calls = {"n": 0}

    def interrupted_in_second_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_save(*args, **kwargs)

    monkeypatch.setattr(train_module, "_save", interrupted_in_second_chunk)
    assert main(_train_args(synthetic_scene, out)) == 130  # Ctrl-C in the second chunk
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "running" and run["num_timesteps"] == 64
    assert len(run["evaluations"]) == 1

    monkeypatch.setattr(train_module, "_save", real_save)
    assert main(_train_args(synthetic_scene, out)) == 0  # resumes from the checkpoint
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "done" and run["num_timesteps"] == 128
    assert [e["steps"] for e in run["evaluations"]] == [64, 128]
    assert run["algorithm"] == "ppo" and run["obs"] == "state" and run["seed"] == 0
    assert run["config"]["hyperparameters"] == {"n_steps": 64, "batch_size": 32, "n_epochs": 1}
    assert any((out / "tb").iterdir())  # TensorBoard logs

    agent = load_agent(out)
    assert agent.num_timesteps >= 128
    env = make_env(EnvConfig(scene=synthetic_scene, obs="state", spawn="random"))
    observations = [env.reset(seed=s)[0] for s in range(5)]
    env.close()
    again = load_agent(out)
    for obs in observations:
        np.testing.assert_array_equal(
            agent.predict(obs, deterministic=True)[0], again.predict(obs, deterministic=True)[0]
        )

    capsys.readouterr()
    assert main(_train_args(synthetic_scene, out, 256)) == 1  # another config on the same run
    assert "--overwrite" in capsys.readouterr().err
    assert main(_train_args(synthetic_scene, out, 64, "--overwrite")) == 0
    assert json.loads((out / "run.json").read_text())["num_timesteps"] == 64


def test_corrupt_checkpoint_is_one_clear_error(tmp_path, synthetic_scene):
    out = tmp_path / "run"
    assert main(_train_args(synthetic_scene, out, 64)) == 0
    (out / "agent.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="agent.zip"):
        load_agent(out)
    (out / "agent.zip").unlink()
    with pytest.raises(CheckpointError, match="not found"):
        load_agent(out)
    with pytest.raises(AgentError, match="run.json"):
        load_agent(tmp_path / "nowhere")


def test_bad_training_requests(tmp_path, synthetic_scene, capsys):
    assert (
        main(["train", "bc", "--scene", str(synthetic_scene), "--out", str(tmp_path / "bc")]) == 1
    )
    assert "--demos" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a malformed --hp fails while parsing
        main(_train_args(synthetic_scene, tmp_path / "x", 64, "--hp", "oops"))
    assert "KEY=VALUE" in capsys.readouterr().err
