"""Agents are saved as weights + JSON; a pickle-bearing run folder is refused without running it."""

from __future__ import annotations

import base64
import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from agents import algorithm_class, load_agent
from agents.errors import CheckpointError
from agents.persistence import META_ENTRY, WEIGHTS_ENTRY
from driveenv.cli import main
from tests.agents.test_registry import TinyImageEnv


class _WritesMarker:
    """Unpickling this writes ``path``: the payload a malicious checkpoint would carry."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('ran')",))


def _malicious_sb3_zip(path, marker) -> None:
    """An agent.zip in SB3's format whose ``data`` holds a cloudpickled 'policy_class'."""
    payload = base64.b64encode(pickle.dumps(_WritesMarker(marker))).decode()
    data = {"policy_class": {":type:": "<class 'type'>", ":serialized:": payload}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("_stable_baselines3_version", "2.9.2")


def _run_folder(root, algorithm="ppo", checkpoint="agent.zip"):
    root.mkdir(parents=True, exist_ok=True)
    run = {"algorithm": algorithm, "config": {}, "checkpoint": checkpoint}
    (root / "run.json").write_text(json.dumps(run))
    return root


def test_the_payload_is_live_under_sb3s_own_loader(tmp_path):
    """The test's malicious file really runs code when SB3 opens it (so the refusals below mean
    something)."""
    _malicious_sb3_zip(tmp_path / "agent.zip", tmp_path / "marker")
    with pytest.raises(Exception):  # noqa: B017 - SB3 fails after unpickling; the marker is the point
        PPO.load(tmp_path / "agent.zip")
    assert (tmp_path / "marker").read_text() == "ran"


def test_malicious_agent_zip_is_refused_without_running(tmp_path):
    run = _run_folder(tmp_path / "run")
    _malicious_sb3_zip(run / "agent.zip", tmp_path / "marker")
    with pytest.raises(CheckpointError) as caught:
        load_agent(run)
    message = str(caught.value)
    assert "\n" not in message and str(run / "agent.zip") in message and "pickled" in message
    assert "trust_pickles" in message
    assert not (tmp_path / "marker").exists()


def test_malicious_agent_zip_through_evaluate_is_one_line(tmp_path, synthetic_scene, capsys):
    run = _run_folder(tmp_path / "ppo")
    _malicious_sb3_zip(run / "agent.zip", tmp_path / "marker")
    code = main(
        ["evaluate", str(run), "--scene", str(synthetic_scene), "--episodes", "1"]
        + ["--out", str(tmp_path / "eval")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "agent.zip" in err
    assert not (tmp_path / "marker").exists()


def _small_sac(env):
    return algorithm_class("sac").create(
        env, seed=0, learning_starts=8, batch_size=8, buffer_size=64
    )


def test_checkpoint_is_json_and_weights_only(tmp_path):
    agent = _small_sac(TinyImageEnv())
    agent.save(tmp_path / "agent.zip")
    with zipfile.ZipFile(tmp_path / "agent.zip") as archive:
        assert sorted(archive.namelist()) == sorted([META_ENTRY, WEIGHTS_ENTRY])
        meta = json.loads(archive.read(META_ENTRY))
        weights = torch.load(io.BytesIO(archive.read(WEIGHTS_ENTRY)), weights_only=True)
    assert meta["class"] == "SACAgent" and meta["hyperparameters"]["buffer_size"] == 64
    assert meta["observation_space"]["spaces"]["rgb"]["dtype"] == "uint8"
    extractor = meta["hyperparameters"]["policy_kwargs"]["features_extractor_class"]
    assert extractor == {"$type": "class", "name": "agents.encoders:ObservationEncoder"}
    assert set(weights["parameters"]) >= {"policy", "actor.optimizer", "critic.optimizer"}


def test_trusted_sb3_checkpoint_still_opens_and_a_class_mismatch_is_refused(tmp_path):
    env = TinyImageEnv()
    agent = algorithm_class("ppo").create(env, seed=0, n_steps=16, batch_size=8)
    PPO.save(agent, tmp_path / "legacy.zip")  # SB3's own (pickled) format
    with pytest.raises(CheckpointError, match="pickled"):
        algorithm_class("ppo").load(tmp_path / "legacy.zip")
    legacy = algorithm_class("ppo").load(tmp_path / "legacy.zip", trust_pickles=True)
    obs, _ = env.reset(seed=3)
    expected = agent.predict(obs, deterministic=True)[0]
    np.testing.assert_array_equal(legacy.predict(obs, deterministic=True)[0], expected)
    agent.save(tmp_path / "agent.zip")
    with pytest.raises(CheckpointError, match="holds a 'PPOAgent' agent, not a SACAgent"):
        algorithm_class("sac").load(tmp_path / "agent.zip")


def test_replay_buffer_round_trips_as_arrays(tmp_path):
    env = TinyImageEnv()
    agent = _small_sac(env)
    agent.learn(24)
    agent.save_replay_buffer(tmp_path / "buffer.npz")
    with np.load(tmp_path / "buffer.npz", allow_pickle=False) as data:
        assert data["observations.rgb"].shape == (24, 1, 3, 64, 64)  # SB3 moves channels first
    other = _small_sac(env)
    other.load_replay_buffer(tmp_path / "buffer.npz")
    assert (other.replay_buffer.pos, other.replay_buffer.full) == (24, False)
    for key in ("rgb", "state"):
        np.testing.assert_array_equal(
            other.replay_buffer.observations[key], agent.replay_buffer.observations[key]
        )
    np.testing.assert_array_equal(other.replay_buffer.actions, agent.replay_buffer.actions)
    wrong = algorithm_class("sac").create(env, seed=0, buffer_size=8)
    with pytest.raises(CheckpointError, match="buffer.npz"):
        wrong.load_replay_buffer(tmp_path / "buffer.npz")


def test_resume_restores_the_npz_buffer_and_refuses_a_pickled_one(
    tmp_path, synthetic_scene, capsys
):
    import agents.train as train_module

    out = tmp_path / "run"
    config = train_module.TrainConfig(
        algorithm="sac", scene=str(synthetic_scene), steps=32, checkpoint_every=32,
        eval_episodes=1, max_episode_steps=20,
        hyperparameters={"learning_starts": 16, "batch_size": 16, "buffer_size": 64},
    )  # fmt: skip
    train_module.train(config, out)
    assert (out / "replay_buffer.npz").is_file() and not (out / "replay_buffer.pkl").exists()
    with np.load(out / "replay_buffer.npz", allow_pickle=False) as data:
        first = data["observations.state"].copy()  # the env's observations are a Dict
    config.steps = 64  # the same run, continued: its run.json must hold the same config
    run = json.loads((out / "run.json").read_text())
    run["config"]["steps"], run["status"] = 64, "running"
    (out / "run.json").write_text(json.dumps(run))
    train_module.train(config, out)
    with np.load(out / "replay_buffer.npz", allow_pickle=False) as data:  # 32 if not restored
        assert data["observations.state"].shape[0] == 64 and bool(data["full"])
        np.testing.assert_array_equal(
            data["observations.state"][:32], first
        )  # restored, then grown

    (out / "replay_buffer.npz").unlink()
    (out / "replay_buffer.pkl").write_bytes(pickle.dumps(_WritesMarker(tmp_path / "marker")))
    run["config"]["steps"], run["status"] = 96, "running"
    (out / "run.json").write_text(json.dumps(run))
    config.steps = 96
    with pytest.raises(CheckpointError) as caught:
        train_module.train(config, out)
    assert "replay_buffer.pkl" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "marker").exists()
