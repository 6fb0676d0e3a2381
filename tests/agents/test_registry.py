"""The algorithm registry and the image path of every SB3-based agent."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from agents import ALGORITHMS, algorithm_class
from agents.encoders import ObservationEncoder
from agents.errors import AgentError


class TinyImageEnv(gym.Env):
    """64x64 RGB + state observations, 2-D actions; reward for matching the image brightness."""

    observation_space = spaces.Dict(
        {
            "rgb": spaces.Box(0, 255, (64, 64, 3), np.uint8),
            "state": spaces.Box(-1, 1, (3,), np.float32),
        }
    )
    action_space = spaces.Box(-1, 1, (2,), np.float32)

    def _obs(self):
        level = self.np_random.uniform()
        self._level = level
        return {
            "rgb": np.full((64, 64, 3), int(255 * level), np.uint8),
            "state": self.np_random.uniform(-1, 1, 3).astype(np.float32),
        }

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        self._t += 1
        reward = -abs(float(action[0]) - (2 * self._level - 1))
        return self._obs(), reward, False, self._t >= 20, {}


def test_registry_names_and_errors():
    assert set(ALGORITHMS) >= {"ppo", "sac", "meow", "bc", "tdil", "diffusion", "qsm"}
    assert ALGORITHMS["diffusion"] == "agents.diffusion_policy:DiffusionPolicyAgent"
    assert ALGORITHMS["qsm"] == "agents.qsm:QSMAgent"
    with pytest.raises(AgentError, match="unknown algorithm 'dqn'"):
        algorithm_class("dqn")


@pytest.mark.parametrize("name", ["ppo", "sac", "meow"])
def test_image_agents_use_the_shared_encoder_and_round_trip(tmp_path, name):
    env = TinyImageEnv()
    overrides = (
        {"n_steps": 32, "batch_size": 16}
        if name == "ppo"
        else {"learning_starts": 16, "batch_size": 16, "buffer_size": 200}
    )
    agent = algorithm_class(name).create(env, seed=0, **overrides)
    extractors = [m for m in agent.policy.modules() if isinstance(m, ObservationEncoder)]
    assert extractors and all(
        e.image_keys == ["rgb"] and e.vector_keys == ["state"] for e in extractors
    )
    agent.learn(32)
    obs, _ = env.reset(seed=1)
    agent.save(tmp_path / "agent.zip")
    loaded = algorithm_class(name).load(tmp_path / "agent.zip")
    np.testing.assert_array_equal(
        agent.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
