"""The --trust-pickles flag of ``driveenv train`` and ``driveenv evaluate``, through the CLI.

A run folder in Stable-Baselines3's pickled format is refused with one line, and nothing runs
or is written; with the flag the older folder opens, in campaign worker processes too. Failed
commands leave no new folder behind.
"""

from __future__ import annotations

import json
import pickle

import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.save_util import save_to_pkl

from agents import load_agent
from driveenv.cli import main
from simulator import EnvConfig, make_env
from tests.agents.test_persistence import _malicious_sb3_zip, _run_folder, _WritesMarker


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_evaluate_refuses_a_pickled_run_and_opens_it_with_the_flag(
    tmp_path, synthetic_scene, capsys
):
    run = _run_folder(tmp_path / "ppo")
    _malicious_sb3_zip(run / "agent.zip", tmp_path / "marker")
    evaluate = ["evaluate", str(run), "--scene", str(synthetic_scene), "--max-episode-steps", "5"]
    assert main([*evaluate, "--episodes", "1", "--out", str(tmp_path / "eval")]) == 1
    err = _one_line(capsys)
    assert "agent.zip" in err and "--trust-pickles" in err
    assert not (tmp_path / "marker").exists() and not (tmp_path / "eval").exists()

    # An older run folder: SB3's own pickled zip of a PPO trained on this scene's state obs.
    env = make_env(EnvConfig(scene=synthetic_scene, obs="state", max_episode_steps=5))
    PPO("MultiInputPolicy", env, n_steps=16, batch_size=8, seed=0).save(run / "agent.zip")
    env.close()
    config = {"obs": "state", "max_episode_steps": 5}
    (run / "run.json").write_text(
        json.dumps({"algorithm": "ppo", "config": config, "checkpoint": "agent.zip"})
    )
    out = tmp_path / "eval"
    assert main([*evaluate, "--episodes", "1", "--out", str(out)]) == 1
    assert "pickled" in _one_line(capsys) and not out.exists()
    # 5 episodes in chunks of 4 on 2 workers: the flag reaches the worker processes.
    trusted = [*evaluate, "--episodes", "5", "--workers", "2", "--trust-pickles"]
    assert main([*trusted, "--out", str(out)]) == 0
    assert "ppo" in capsys.readouterr().out
    assert len(list((out / "episodes" / "ppo" / "capture").glob("seed_*.json"))) == 5


def test_train_resume_refuses_a_pickled_buffer_unless_trusted(tmp_path, synthetic_scene, capsys):
    out = tmp_path / "run"
    train = ["train", "sac", "--scene", str(synthetic_scene), "--obs", "state", "--steps", "64"]
    train += ["--checkpoint-every", "32", "--eval-episodes", "1", "--max-episode-steps", "20"]
    train += ["--hp", "learning_starts=16", "--hp", "batch_size=16", "--out", str(out)]
    assert main(train) == 0
    capsys.readouterr()

    def interrupted_at_half():  # as if stopped after the first chunk, with an older buffer
        run = json.loads((out / "run.json").read_text())
        run["status"], run["num_timesteps"] = "running", 32
        (out / "run.json").write_text(json.dumps(run))
        (out / "replay_buffer.npz").unlink(missing_ok=True)

    buffer = load_agent(out).replay_buffer
    interrupted_at_half()
    (out / "replay_buffer.pkl").write_bytes(pickle.dumps(_WritesMarker(tmp_path / "marker")))
    assert main(train) == 1
    err = _one_line(capsys)
    assert "replay_buffer.pkl" in err and "--trust-pickles" in err
    assert not (tmp_path / "marker").exists()

    save_to_pkl(out / "replay_buffer.pkl", buffer)  # a genuine buffer of the older format
    assert main([*train, "--trust-pickles"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "done" and run["num_timesteps"] == 64
    assert (out / "replay_buffer.npz").is_file()  # saved again, as arrays


def test_help_states_the_risk(capsys):
    for command in ("train", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--trust-pickles" in text and "runs any code" in text


def test_a_failed_train_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "D"
    assert main(["train", "ppo", "--scene", str(tmp_path / "nonexistent"), "--out", str(out)]) == 1
    assert "nonexistent" in _one_line(capsys)
    assert not out.exists()


def test_agents_train_hint_drops_overwrite():
    from agents.cli import resume_hint

    assert "without --overwrite" in resume_hint(overwrite=True)
    assert "--overwrite" not in resume_hint(overwrite=False)
