"""Q-score matching: the actor follows grad_a Q, starts from a Diffusion Policy, saves and loads."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.diffusion_policy import DiffusionPolicyAgent
from agents.errors import AgentError, CheckpointError
from agents.qsm import QSMAgent

SMALL = {
    "actor_hidden": 64,
    "critic_hidden": 64,
    "diffusion_steps": 10,
    "inference_steps": 5,
    "batch_size": 64,
    "learning_starts": 100,
    "actor_learning_rate": 1e-3,
    "critic_learning_rate": 1e-3,
}


class Bandit(gym.Env):
    """One-step episodes: the observation says where the best action is; reward -(a - target)^2."""

    def __init__(self):
        self.observation_space = spaces.Dict({"state": spaces.Box(-1, 1, (1,), np.float32)})
        self.action_space = spaces.Box(-2, 2, (1,), np.float32)
        self._target = 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._target = float(self.np_random.choice([-1.0, 1.0]))
        return {"state": np.array([self._target], np.float32)}, {}

    def step(self, action):
        reward = -((float(action[0]) - self._target) ** 2)
        return (
            {"state": np.array([self._target], np.float32)},
            reward,
            True,
            False,
            {"success": reward > -0.1},
        )


@pytest.mark.training
def test_actor_learns_the_best_action_of_each_state_from_the_critic():
    env = Bandit()
    agent = QSMAgent(env, seed=0, **SMALL)
    agent.learn(700)
    for target in (-1.0, 1.0):
        obs = {"state": np.full((50, 1), target, np.float32)}
        actions, _ = agent.predict(obs, deterministic=False)
        assert abs(float(np.median(actions)) - target) < 0.3, (target, np.median(actions))
    # Early (uniform) returns are about -1.8 on average; late ones close to 0.
    assert np.mean(agent.episode_returns[-100:]) > 0.3 * np.mean(agent.episode_returns[:100])


def test_fine_tuning_starts_from_the_diffusion_policy_weights():
    env = Bandit()
    dp = DiffusionPolicyAgent(
        env=env,
        network="mlp",
        pred_horizon=1,
        obs_horizon=1,
        action_horizon=1,
        mlp_hidden=32,
        mlp_depth=1,
        diffusion_steps=5,
        inference_steps=5,
    )
    qsm = QSMAgent.from_diffusion_policy(
        dp, env, **{k: v for k, v in SMALL.items() if "actor" not in k and "steps" not in k}
    )
    for ours, theirs in zip(qsm.actor.parameters(), dp.ema_model.parameters(), strict=True):
        assert torch.equal(ours, theirs) and ours.requires_grad
    obs = {"state": np.ones(1, np.float32)}
    np.testing.assert_allclose(qsm.predict(obs)[0], dp.predict(obs)[0], atol=1e-6)
    assert qsm._pretrained  # acts with the policy from the first step, no random warm-up
    chunked = DiffusionPolicyAgent(env=env, network="mlp")
    with pytest.raises(AgentError, match="pred_horizon=1, obs_horizon=1"):
        QSMAgent.from_diffusion_policy(chunked, env)


def test_save_load_round_trip_and_errors(tmp_path):
    env = Bandit()
    agent = QSMAgent(env, seed=3, **SMALL)
    agent.learn(120)
    path = tmp_path / "agent.pt"
    agent.save(path)
    obs = {"state": np.array([1.0], np.float32)}
    for loaded in (QSMAgent.load(path, env=env), QSMAgent.load(path)):
        np.testing.assert_allclose(loaded.predict(obs)[0], agent.predict(obs)[0], atol=1e-6)
        assert loaded.num_timesteps == 120
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable QSM checkpoint"):
        QSMAgent.load(tmp_path / "junk.pt")
    image_env = Bandit()
    image_env.observation_space = spaces.Dict({"rgb": spaces.Box(0, 255, (64, 64, 3), np.uint8)})
    with pytest.raises(AgentError, match="vector observations only"):
        QSMAgent(image_env)


def test_unknown_settings_name_the_setting():
    with pytest.raises(AgentError, match="unknown QSMConfig setting.*q_scale"):
        QSMAgent(Bandit(), q_scale=3.0)
    with pytest.raises(AgentError, match="unknown DiffusionPolicyConfig setting.*horizon"):
        DiffusionPolicyAgent(env=Bandit(), horizon=3)
