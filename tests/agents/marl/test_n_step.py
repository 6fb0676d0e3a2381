"""n-step returns: the targets sum the rewards that follow and carry a delayed reward back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.marl.agent import VDNAgent
from agents.marl.learner import n_step_returns


def _reference(rewards, length, gamma, n):
    """Per step: (sum of gamma^k r_(t+k) over the steps left, gamma^h, t + h - 1), by loops."""
    out = []
    for t in range(length):
        h = min(n, length - t)
        total = sum(gamma**k * rewards[t + k] for k in range(h))
        out.append((total, gamma**h, t + h - 1))
    return out


@pytest.mark.parametrize("n", [1, 3, 7])
def test_n_step_returns_match_a_per_episode_loop(n):
    rng = np.random.default_rng(n)
    lengths = [6, 2, 1, 4]
    rewards = rng.normal(size=(len(lengths), 6)).astype(np.float32)
    filled = np.zeros_like(rewards)
    for row, length in enumerate(lengths):
        filled[row, :length] = 1.0
        rewards[row, length:] = 99.0  # padding must never leak into a return
    returns, discount, last = n_step_returns(
        torch.from_numpy(rewards), torch.from_numpy(filled), 0.9, n
    )
    for row, length in enumerate(lengths):
        for t, (total, weight, index) in enumerate(_reference(rewards[row], length, 0.9, n)):
            assert returns[row, t].item() == pytest.approx(total, abs=1e-5)
            assert discount[row, t].item() == pytest.approx(weight, abs=1e-6)
            assert last[row, t].item() == index


class DelayedReward:
    """A ``TeamEnv``: two agents, one action, ``LENGTH`` steps; the team's reward is 1 at the end."""

    LENGTH = 8
    n_agents, obs_dim, state_dim, n_actions, max_steps = 2, LENGTH + 1, LENGTH + 1, 1, LENGTH

    def _arrays(self):
        state = np.eye(self.obs_dim, dtype=np.float32)[self.t]
        return np.stack([state, state]), state, np.ones((2, 1), np.float32)

    def reset(self, seed=None):
        self.t = 0
        return self._arrays()

    def step(self, actions):
        self.t += 1
        done = self.t == self.LENGTH
        return (*self._arrays(), float(done), done, False, {})


def _team_value_at_start(agent) -> float:
    learner, env = agent.learner, DelayedReward()
    obs, state, _ = env.reset()
    inputs = learner.inputs(torch.from_numpy(obs), torch.full((2,), -1))
    with torch.no_grad():
        values, _ = learner.network(inputs, None, None)
        return float(learner.mixer(values[:, 0, 0][None], None, torch.from_numpy(state)[None]))


@pytest.mark.training
@pytest.mark.parametrize(("n_step", "learns"), [(8, True), (1, False)])
def test_a_reward_eight_steps_late_reaches_the_first_state_without_a_target_copy(n_step, learns):
    """With no target-network copy, a one-step target only sees the untrained next value; an
    8-step return sees the reward itself, so Q_tot(s_0) learns the true return, 1."""
    hp = {"n_step": n_step, "gamma": 1.0, "reward_scale": 1.0, "target_update": 10**6}
    agent = VDNAgent.create(DelayedReward(), seed=0, batch_size=8, train_every=1, lr=1e-2, **hp)
    agent.learn(100 * DelayedReward.LENGTH)
    error = abs(_team_value_at_start(agent) - 1.0)
    assert (error < 0.1) if learns else (error > 0.5), error
