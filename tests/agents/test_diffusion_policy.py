"""Diffusion Policy on the two-way detour toy: both modes kept, save/load, receding horizon."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.diffusion_policy import DiffusionPolicyAgent, DiffusionPolicyConfig
from agents.errors import AgentError, CheckpointError, DemoError
from generative.toy import DetourEnv, detour_chunk_sides, detour_demos


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    env = DetourEnv()
    agent = DiffusionPolicyAgent(
        env=env,
        demos=detour_demos(30, seed=0),
        network="mlp",
        mlp_hidden=256,
        mlp_depth=3,
        diffusion_steps=50,
        batch_size=256,
        learning_rate=1e-3,
        seed=0,
    )
    agent.learn(1500)
    return env, agent


def fit_gaussian_regression(demos, steps: int = 300) -> torch.nn.Module:
    """Behaviour cloning with a unimodal Gaussian: its mean is the least-squares action."""
    torch.manual_seed(0)
    states = torch.from_numpy(np.concatenate([d.observations["state"][:-1] for d in demos]))
    actions = torch.from_numpy(np.concatenate([d.actions for d in demos]))
    net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = ((net(states) - actions) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net


@pytest.mark.training
def test_chunks_at_the_start_split_between_both_detours_where_regression_averages(trained):
    env, agent = trained
    start = np.asarray(env.config.start, dtype=np.float32)
    window = {"state": np.stack([start, start])}
    chunks = agent.sample_chunks(window, n=200, seed=1)
    upper, lower = detour_chunk_sides(chunks, env.config)
    assert 0.3 < upper < 0.7 and 0.3 < lower < 0.7, (upper, lower)
    # The Gaussian regression heads straight at the obstacle: almost no vertical motion.
    regression = fit_gaussian_regression(detour_demos(30, seed=0))
    with torch.no_grad():
        mean_action = regression(torch.from_numpy(start)[None])[0].numpy()
    assert abs(mean_action[1]) < 0.3 < mean_action[0]


@pytest.mark.training
def test_closed_loop_rollouts_reach_the_goal_both_ways(trained):
    env, agent = trained
    outcomes = []
    for episode in range(12):
        obs, _ = env.reset(seed=500 + episode)
        agent.reset()
        done = False
        while not done:
            action, _ = agent.predict(obs, deterministic=False)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        outcomes.append((info["mode"], info["success"]))
    successes = [mode for mode, success in outcomes if success]
    assert len(successes) >= 8, outcomes
    assert {"upper", "lower"} <= set(successes), outcomes


@pytest.mark.training
def test_receding_horizon_replans_every_action_horizon_steps(trained, monkeypatch):
    env, agent = trained
    calls = []
    original = agent.ema_model.sample

    def counting(window, generator, num_steps=None):
        calls.append(len(next(iter(window.values()))))
        return original(window, generator, num_steps)

    monkeypatch.setattr(agent.ema_model, "sample", counting)
    agent.reset()
    obs = {"state": np.zeros((3, 2), np.float32)}
    for _ in range(agent.config.action_horizon * 2):
        actions, _ = agent.predict(obs)
        assert actions.shape == (3, 2)
    assert calls == [3, 3]  # one batched re-plan per action_horizon steps
    agent.predict(obs)
    # A new episode in env 1 re-plans that one only.
    agent.predict(obs, episode_start=np.array([False, True, False]))
    assert calls == [3, 3, 3, 1]


@pytest.mark.training
def test_deterministic_prediction_is_repeatable_and_survives_save_load(trained, tmp_path):
    env, agent = trained
    obs = {"state": np.array([-0.5, 0.2], np.float32)}
    agent.reset()
    first, _ = agent.predict(obs, deterministic=True)
    agent.reset()
    again, _ = agent.predict(obs, deterministic=True)
    assert np.array_equal(first, again)
    path = tmp_path / "agent.pt"
    agent.save(path)
    loaded = DiffusionPolicyAgent.load(path, env=env)
    loaded_action, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_allclose(loaded_action, first, atol=1e-6)
    assert loaded.num_updates == agent.num_updates


def test_image_observations_use_the_shared_cnn():
    space = spaces.Dict(
        {
            "rgb": spaces.Box(0, 255, (64, 64, 3), np.uint8),
            "state": spaces.Box(-5, 5, (4,), np.float32),
        }
    )
    agent = DiffusionPolicyAgent(
        observation_space=space,
        action_space=spaces.Box(-1, 1, (2,), np.float32),
        network="unet",
        down_dims=(16, 32),
        pred_horizon=4,
        action_horizon=2,
        batch_size=4,
    )
    assert "rgb" in agent.model.features.encoders
    obs = {"rgb": np.zeros((64, 64, 3), np.uint8), "state": np.zeros(4, np.float32)}
    action, _ = agent.predict(obs)
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)


def test_bad_input_is_reported_as_agent_errors(tmp_path):
    env = DetourEnv()
    with pytest.raises(AgentError, match="multiple of 4"):
        DiffusionPolicyConfig(network="unet", pred_horizon=6)
    with pytest.raises(AgentError, match="action_horizon=9 exceeds"):
        DiffusionPolicyConfig(action_horizon=9)
    with pytest.raises(DemoError, match="needs demonstrations"):
        DiffusionPolicyAgent(env=env).learn(1)
    broken = tmp_path / "agent.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="agent.pt: not a readable"):
        DiffusionPolicyAgent.load(broken)
