"""PPO's image policy: the critic's value loss must not move the actor's image features."""

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.sb3 import PPOAgent


class ImageStateEnv(gym.Env):
    """64x64 RGB + state observations; only its spaces matter (the test never learns)."""

    observation_space = spaces.Dict(
        {
            "rgb": spaces.Box(0, 255, (64, 64, 3), np.uint8),
            "state": spaces.Box(-1, 1, (3,), np.float32),
        }
    )
    action_space = spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def _nonzero(parameters) -> bool:
    return any(p.grad is not None and torch.count_nonzero(p.grad) > 0 for p in parameters)


def test_value_loss_moves_only_the_critic_cnn_and_the_actor_loss_only_the_actor_cnn():
    agent = PPOAgent.create(DummyVecEnv([ImageStateEnv]), seed=0, n_steps=8, batch_size=8)
    policy = agent.policy
    actor_cnn = policy.pi_features_extractor.cnn
    critic_cnn = policy.vf_features_extractor.cnn
    assert actor_cnn is not None and critic_cnn is not None and actor_cnn is not critic_cnn
    rng = np.random.default_rng(0)
    observations, _ = policy.obs_to_tensor(
        {
            "rgb": rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8),
            "state": rng.uniform(-1, 1, (4, 3)).astype(np.float32),
        }
    )

    policy.zero_grad()
    policy.predict_values(observations).sum().backward()
    assert _nonzero(critic_cnn.parameters()) and not _nonzero(actor_cnn.parameters())

    policy.zero_grad()
    _, log_prob, _ = policy.evaluate_actions(observations, torch.zeros(4, 2))
    log_prob.sum().backward()
    assert _nonzero(actor_cnn.parameters()) and not _nonzero(critic_cnn.parameters())
