"""Centralised training of the shared utility network and the mixer; per-agent execution.

The loss follows each method's paper, with an n-step return as the bootstrapped target
(``n_step``; 1 is the papers' one-step target; n-step returns speed up credit for rewards that
come several steps after the action, as in PyMARL2, Hu et al. 2021). Expected-value mixers (IQL,
VDN, QMIX) regress the mixed value on r_t + ... + gamma^(n-1) r_(t+n-1) + gamma^n Q_tot'(s_(t+n),
u'), u' the online network's greedy actions (double Q-learning), Q_tot' from target networks
copied every ``target_update`` gradient steps. DDN and DMIX regress the team's quantile function
Z_tot(tau) on samples of the target distribution, the same n-step return plus gamma^n
Z_tot'(tau'), with the quantile Huber loss of QR-DQN/IQN (Dabney et al. 2018), kappa = 1. One
set of quantile levels is drawn per sampled episode and shared by its agents (the comonotonic
coupling under which quantile functions add) and its time steps, so the level embedding is
computed once per episode instead of once per agent and step; each agent's mean Q_i is the
average of its quantile function over a fixed midpoint grid of ``mean_quantiles`` levels, and
its shape the quantile values at the sampled levels minus that mean (``agents.marl.mixers``).
Agents act greedily on Q_i.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from agents.marl.mixers import DISTRIBUTIONAL, TeamValue
from agents.marl.networks import UtilityNetwork


@dataclass
class MARLConfig:
    """Hyper-parameters of the multi-agent learners (``--hp name=value``)."""

    hidden: int = 64
    recurrent: bool = False
    mixer_embed: int = 32
    lr: float = 5e-4
    gamma: float = 0.99
    batch_size: int = 32
    buffer_episodes: int = 2000
    target_update: int = 200  # gradient steps between target-network copies
    train_every: int = 4  # environment steps per gradient step (taken after each episode)
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_steps: int = 20_000  # environment steps of the linear epsilon decay
    quantiles: int = 8  # sampled quantile levels per training sample (DDN, DMIX)
    mean_quantiles: int = 8  # midpoint levels that estimate each agent's mean
    reward_scale: float = 0.1
    n_step: int = 5  # rewards summed before bootstrapping (1: the one-step target)
    grad_clip: float = 10.0


class Learner:
    """The networks, their targets, the optimiser and the update of one multi-agent learner."""

    def __init__(self, mixer, n_agents, obs_dim, state_dim, n_actions, config: MARLConfig):
        self.config, self.n_agents, self.n_actions = config, n_agents, n_actions
        self.distributional = mixer in DISTRIBUTIONAL
        input_dim = obs_dim + n_agents + n_actions
        self.network = UtilityNetwork(
            input_dim, n_actions, config.hidden, config.recurrent, self.distributional
        )
        self.mixer = TeamValue(mixer, n_agents, state_dim, config.mixer_embed)
        self.target_network = copy.deepcopy(self.network)
        self.target_mixer = copy.deepcopy(self.mixer)
        self.parameters = [*self.network.parameters(), *self.mixer.parameters()]
        self.optimiser = torch.optim.Adam(self.parameters, lr=config.lr)
        grid = (torch.arange(config.mean_quantiles).float() + 0.5) / config.mean_quantiles
        self.grid = grid
        self.updates = 0

    # ----------------------------------------------------------------- utilities
    def inputs(self, obs: torch.Tensor, last_actions: torch.Tensor) -> torch.Tensor:
        """Network inputs (..., N, O + N + A): observation, agent one-hot, previous action."""
        shape = obs.shape[:-1]
        ids = torch.eye(self.n_agents).expand(*shape[:-1], -1, -1)
        previous = nn.functional.one_hot(last_actions.clamp(min=0), self.n_actions).float()
        previous = previous * (last_actions >= 0).unsqueeze(-1).float()
        return torch.cat([obs, ids, previous], dim=-1)

    def _levels(self, episodes: int, sampled: int) -> torch.Tensor:
        """Quantile levels (episodes, M + sampled): the mean grid, then uniform samples."""
        grid = self.grid.expand(episodes, -1)
        return torch.cat([grid, torch.rand(episodes, sampled)], dim=-1)

    def utilities(self, network, inputs, sampled: int):
        """Means (B, T, N, A) and shapes (B, T, N, K, A) (None if expected) over episodes.

        ``inputs``: (B, T, N, D); the quantile levels (B, K) are shared by an episode's steps
        and agents.
        """
        b, t, n, d = inputs.shape
        levels = self._levels(b, sampled) if self.distributional else None
        if network.recurrent:
            hidden, outputs = None, []
            for step in range(t):
                out, hidden = network(inputs[:, step].reshape(b * n, d), hidden, levels)
                outputs.append(out.view(b, n, *out.shape[1:]))
            values = torch.stack(outputs, dim=1)
        else:
            values, _ = network(inputs.reshape(b * t * n, d), None, levels)
            values = values.view(b, t, n, *values.shape[1:])
        if not self.distributional:
            return values[..., 0, :], None, levels
        m = self.config.mean_quantiles
        means = values[..., :m, :].mean(-2)
        shapes = values[..., m:, :] - means.unsqueeze(-2)
        return means, shapes, levels[..., m:]

    # ----------------------------------------------------------------- acting
    @torch.no_grad()
    def act(self, obs, last_actions, avail, hidden, epsilon: float, rng: np.random.Generator):
        """Actions (N,) for one step of one episode, epsilon-greedy on Q_i, and the new hidden."""
        inputs = self.inputs(torch.as_tensor(obs), torch.as_tensor(last_actions))
        taus = self.grid if self.distributional else None
        values, hidden = self.network(inputs, hidden, taus)
        q = values.mean(1).numpy()
        q[avail == 0] = -np.inf
        actions = q.argmax(-1)
        explore = rng.random(self.n_agents) < epsilon
        for i in np.nonzero(explore)[0]:
            actions[i] = rng.choice(np.nonzero(avail[i])[0])
        return actions, hidden

    # ----------------------------------------------------------------- learning
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.config
        actions = batch["actions"]  # (B, T, N)
        previous = torch.cat([torch.full_like(actions[:, :1], -1), actions], dim=1)
        inputs = self.inputs(batch["obs"], previous)  # (B, T+1, N, D)
        means, shapes, levels = self.utilities(self.network, inputs, cfg.quantiles)
        chosen = actions.unsqueeze(-1)
        q = means[:, :-1].gather(-1, chosen).squeeze(-1)  # (B, T, N)
        b, t, n = q.shape
        state = batch["state"]
        shape_q = None
        if shapes is not None:
            index = chosen.unsqueeze(-2).expand(b, t, n, shapes.shape[-2], 1)
            shape_q = shapes[:, :-1].gather(-1, index).squeeze(-1).reshape(b * t, n, -1)
        prediction = self.mixer(q.reshape(b * t, n), shape_q, state[:, :-1].reshape(b * t, -1))
        with torch.no_grad():
            target = self._target(batch, inputs, means)  # (B*T, G, K')
        mask = batch["filled"].reshape(b * t, 1)
        if not self.distributional:
            error = (prediction.squeeze(-1) - target.squeeze(-1)) ** 2
            return (error * mask).sum() / (mask.sum() * error.shape[1])
        taus = levels.unsqueeze(1).expand(b, t, -1).reshape(b * t, 1, -1, 1)
        u = target.unsqueeze(-2) - prediction.unsqueeze(-1)  # (B*T, G, K, K')
        huber = torch.where(u.abs() <= 1.0, 0.5 * u**2, u.abs() - 0.5)
        weighted = (taus - (u.detach() < 0).float()).abs() * huber
        per_sample = weighted.mean(-1).sum(-1).mean(-1, keepdim=True)
        return (per_sample * mask).sum() / mask.sum()

    def _target(self, batch, inputs, online_means) -> torch.Tensor:
        """Samples (B*T, G, K') of r + gamma (1 - terminated) Z_tot'(s', u'), u' greedy online."""
        cfg = self.config
        avail = batch["avail"][:, 1:]
        greedy = online_means[:, 1:].masked_fill(avail == 0, -1e9).argmax(-1, keepdim=True)
        means, shapes, _ = self.utilities(self.target_network, inputs, cfg.quantiles)
        q = means[:, 1:].gather(-1, greedy).squeeze(-1)
        b, t, n = q.shape
        shape_q = None
        if shapes is not None:
            index = greedy.unsqueeze(-2).expand(b, t, n, shapes.shape[-2], 1)
            shape_q = shapes[:, 1:].gather(-1, index).squeeze(-1).reshape(b * t, n, -1)
        state = batch["state"][:, 1:].reshape(b * t, -1)
        next_value = self.target_mixer(q.reshape(b * t, n), shape_q, state)
        returns, discount, last = n_step_returns(
            batch["reward"] * cfg.reward_scale, batch["filled"], cfg.gamma, cfg.n_step
        )
        alive = 1.0 - batch["terminated"].gather(1, last)  # (B, T)
        bootstrap = next_value.view(b, t, *next_value.shape[1:])
        bootstrap = bootstrap.gather(1, last[..., None, None].expand_as(bootstrap))
        weight = (discount * alive).reshape(b * t, 1, 1)
        return returns.reshape(b * t, 1, 1) + weight * bootstrap.reshape(
            b * t, *bootstrap.shape[2:]
        )

    def update(self, batch: dict[str, torch.Tensor]) -> float:
        """One gradient step on ``batch``; copies the targets every ``target_update`` steps."""
        loss = self.loss(batch)
        self.optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters, self.config.grad_clip)
        self.optimiser.step()
        self.updates += 1
        if self.updates % self.config.target_update == 0:
            self.sync_targets()
        return loss.item()

    def sync_targets(self) -> None:
        self.target_network.load_state_dict(self.network.state_dict())
        self.target_mixer.load_state_dict(self.mixer.state_dict())


def n_step_returns(reward: torch.Tensor, filled: torch.Tensor, gamma: float, n: int):
    """Truncated n-step returns over padded episodes (Sutton and Barto 2018, ch. 7).

    For every step t of ``reward`` (B, T) this sums gamma^k r_{t+k} over the h = min(n, steps
    left in the episode) steps that follow, and gives gamma^h and the index t + h - 1 of the
    transition whose next state is bootstrapped from (masked steps: h = 0, index t).
    """
    b, t = reward.shape
    returns = torch.zeros_like(reward)
    horizon = torch.zeros_like(reward)
    for k in range(min(n, t)):
        shifted = torch.zeros_like(reward)
        valid = torch.zeros_like(filled)
        shifted[:, : t - k] = reward[:, k:]
        valid[:, : t - k] = filled[:, k:]
        returns += gamma**k * shifted * valid
        horizon += valid
    steps = torch.arange(t).expand(b, t)
    last = (steps + horizon.long() - 1).clamp(min=0, max=t - 1).maximum(steps)
    return returns, gamma**horizon, last
