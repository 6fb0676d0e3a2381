"""The two-step cooperative matrix game (QMIX, Rashid et al. 2018) with stochastic rewards.

DFAC's first check (Sun, Lee, Lee 2021, section 5.1): a game small enough that the joint
return's distribution is known in closed form. Two agents, two actions each. In state 1, agent
0's action picks the next state (0: 2A, 1: 2B) and the reward is 0. In 2A every joint action
pays 7; in 2B the payoff is [[0, 1], [1, 8]]. Here each final payoff carries uniform noise,
U(-3, 3) in 2A and U(-4, 4) in 2B, so under a deterministic joint policy the return from
state 1 (gamma = 1) is payoff + U(-w, w), whose quantile function is payoff + w (2 tau - 1).
A distributional learner's Z_tot(s1, u*) must match that function at every tau; an
expected-value learner can only match its mean. Both agents see the one-hot state, which is
also the global state.
"""

from __future__ import annotations

import numpy as np
import torch

from agents.marl.agent import AGENTS

PAYOFF_2A = np.full((2, 2), 7.0)
PAYOFF_2B = np.array([[0.0, 1.0], [1.0, 8.0]])
NOISE = (3.0, 4.0)  # half-widths of the uniform noise in 2A and 2B
HYPERPARAMETERS = {
    "gamma": 1.0,
    "reward_scale": 1.0,
    "epsilon_start": 1.0,  # uniform exploration, as the matrix-game experiments
    "epsilon_end": 1.0,
    "batch_size": 32,
    "target_update": 50,
    "train_every": 2,  # one update per two-step episode
    "n_step": 1,  # under uniform exploration a longer return would be the explorer's, not greedy's
    "lr": 1e-3,
    "quantiles": 8,
    "mean_quantiles": 8,
    "hidden": 32,
}


class TwoStepGame:
    """The game as a ``TeamEnv`` (``agents.marl.team_env``)."""

    n_agents, obs_dim, state_dim, n_actions, max_steps = 2, 3, 3, 2, 2

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.where = 0

    def _arrays(self):
        state = np.eye(3, dtype=np.float32)[self.where]
        return np.stack([state, state]), state, np.ones((2, 2), np.float32)

    def reset(self, seed: int | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.where = 0
        return self._arrays()

    def step(self, actions):
        a0, a1 = int(actions[0]), int(actions[1])
        if self.where == 0:
            self.where = 1 + a0
            return (*self._arrays(), 0.0, False, False, {})
        payoff, width = (PAYOFF_2A, NOISE[0]) if self.where == 1 else (PAYOFF_2B, NOISE[1])
        reward = float(payoff[a0, a1] + self.rng.uniform(-width, width))
        return (*self._arrays(), reward, True, False, {})

    def close(self) -> None:
        """Nothing to release."""


def train(algorithm: str, episodes: int, seed: int = 0):
    """A learner of ``algorithm`` trained for ``episodes`` episodes (one update each)."""
    agent = AGENTS[algorithm].create(TwoStepGame(seed), seed=seed, **HYPERPARAMETERS)
    agent.learn(2 * episodes)
    return agent


@torch.no_grad()
def team_quantiles(agent, where: int, joint: tuple[int, int], taus: np.ndarray) -> np.ndarray:
    """The learner's Z_tot(state ``where``, ``joint``) at levels ``taus`` (its mean if expected;
    IQL's: the agents' average utility, each an estimate of the team's return)."""
    learner = agent.learner
    state = torch.eye(3)[where]
    obs = torch.stack([state, state])
    last = torch.full((2,), -1) if where == 0 else torch.tensor([0, 0])
    inputs = learner.inputs(obs, last)
    levels = torch.as_tensor(taus, dtype=torch.float32)
    grid_and_taus = torch.cat([learner.grid, levels]).expand(2, -1)
    values, _ = learner.network(inputs, None, grid_and_taus if learner.distributional else None)
    chosen = values[torch.arange(2), :, torch.as_tensor(joint)]  # (2, K)
    if not learner.distributional:  # IQL: each agent's utility estimates the team's return
        team = learner.mixer(chosen[:, 0][None], None, state[None]).mean()
        return np.full(len(taus), float(team))
    m = learner.config.mean_quantiles
    means = chosen[:, :m].mean(-1)
    shapes = chosen[:, m:] - means[:, None]
    return learner.mixer(means[None], shapes[None], state[None])[0, 0].numpy()


def greedy_joint(agent, where: int) -> tuple[int, int]:
    """The agents' greedy joint action in state ``where``."""
    agent.reset()
    if where > 0:
        agent._last = np.zeros(2, dtype=np.int64)
    state = np.eye(3, dtype=np.float32)[where]
    actions = agent.act(np.stack([state, state]), np.ones((2, 2), np.float32), 0.0)
    return int(actions[0]), int(actions[1])


def closed_form_quantiles(agent, taus: np.ndarray) -> np.ndarray:
    """Quantiles of the return from state 1 under the agents' greedy joint policy."""
    first = greedy_joint(agent, 0)
    where = 1 + first[0]
    second = greedy_joint(agent, where)
    payoff, width = (PAYOFF_2A, NOISE[0]) if where == 1 else (PAYOFF_2B, NOISE[1])
    return payoff[second] + width * (2.0 * np.asarray(taus) - 1.0)


def quantile_check(agent, taus=(0.1, 0.25, 0.5, 0.75, 0.9)) -> dict[str, float]:
    """Learned vs closed-form quantiles of the joint return from state 1 (greedy policy)."""
    taus = np.asarray(taus, dtype=np.float64)
    learned = team_quantiles(agent, 0, greedy_joint(agent, 0), taus)
    truth = closed_form_quantiles(agent, taus)
    return {
        "mean_error": float(abs(learned.mean() - truth.mean())),
        "max_quantile_error": float(np.abs(learned - truth).max()),
        "learned": learned.tolist(),
        "closed_form": truth.tolist(),
    }
