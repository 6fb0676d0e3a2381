"""Behaviour cloning (state and image) on expert demonstrations."""

import numpy as np
import pytest
import torch

from agents.bc import BCAgent
from agents.demos import record_episode
from agents.errors import AgentError, CheckpointError
from agents.experts import make_expert
from simulator import EnvConfig, make_env


def _mse_to_expert(agent, trajectories):
    obs = {"state": np.concatenate([t.observations["state"][:-1] for t in trajectories])}
    actions = np.concatenate([t.actions for t in trajectories])
    predicted, _ = agent.predict(obs)
    return float(np.mean((predicted - actions) ** 2)), float(np.var(actions, axis=0).sum())


@pytest.mark.training
def test_bc_fits_the_expert_and_round_trips(tmp_path, state_env_config, expert_demos):
    path, trajectories = expert_demos
    env = make_env(state_env_config)
    agent = BCAgent.create(env, seed=0, demos=path)
    before, variance = _mse_to_expert(agent, trajectories)
    agent.learn(300)
    after, _ = _mse_to_expert(agent, trajectories)
    assert after < 0.5 * before and after < 0.3 * variance
    obs, _ = env.reset(seed=3)
    action, state = agent.predict(obs)
    assert action.shape == (2,) and state is None and np.all(np.abs(action) <= 1)
    agent.save(tmp_path / "bc.pt")
    loaded = BCAgent.load(tmp_path / "bc.pt")
    batch = {"state": trajectories[0].observations["state"]}
    np.testing.assert_array_equal(agent.predict(batch)[0], loaded.predict(batch)[0])
    env.close()


def test_bc_checkpoint_errors(tmp_path):
    bad = tmp_path / "bc.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="bc.pt"):
        BCAgent.load(bad)
    torch.save({"algorithm": "sac"}, bad)
    with pytest.raises(CheckpointError, match="not 'bc'"):
        BCAgent.load(bad)


def test_bc_learns_from_64x64_images(synthetic_scene):
    """The image path: SmallCNN + MLP regress the expert's actions from camera frames."""
    env = make_env(EnvConfig(scene=synthetic_scene, obs="rgb", image_size=64, spawn="random"))
    expert = make_expert(env)
    trajectories = [record_episode(env, expert, seed=s) for s in range(2)]
    agent = BCAgent.create(env, seed=0, demos=trajectories, batch_size=64)
    assert agent.policy.encoder.image_keys == ["rgb"]
    losses = []
    for _ in range(4):
        agent.learn(10)
        losses.append(agent.last_loss)
    assert losses[-1] < losses[0]
    obs, _ = env.reset(seed=5)
    action, _ = agent.predict(obs)
    assert action.shape == (2,)
    env.close()


def test_bc_without_demonstrations_is_an_error(state_env_config):
    env = make_env(state_env_config)
    with pytest.raises(AgentError, match="demonstrations"):
        BCAgent.create(env).learn(1)
    env.close()
