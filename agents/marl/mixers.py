"""Value factorisations: how the agents' utilities make the team's value.

DFAC (Sun, Lee, Lee, ICML 2021, arXiv 2102.07936) writes each agent's return distribution as its
mean plus a zero-mean shape, Z_i = Q_i + (Z_i - Q_i), and factorises the two separately:

- the mean goes through an expected-value factorisation: VDN's sum (Sunehag et al. 2018) or
  QMIX's monotonic mixer (Rashid et al. 2018), whose weights come from hypernetworks of the
  global state and are made non-negative with an absolute value, so dQ_tot/dQ_i >= 0;
- the shape goes through a quantile mixture: quantile functions of comonotonic variables add,
  so the shapes evaluated at the same tau are summed (DDN) or summed with non-negative,
  state-dependent weights (DMIX, our choice of weighting; weights >= 0 keep the result a
  non-decreasing function of tau, a valid quantile function).

The team's quantile function is Z_tot(tau) = mean mixer(Q_1..Q_N, s) + shape mixer(shapes, s);
since every shape has zero mean, E[Z_tot] is the mean mixer's output, and with all shapes zero
DDN reduces to VDN and DMIX to QMIX. IQL has no mixer: each agent's own utility is its target.
"""

from __future__ import annotations

import torch
from torch import nn

MIXERS = ("none", "vdn", "qmix", "ddn", "dmix")
DISTRIBUTIONAL = ("ddn", "dmix")


class QMixer(nn.Module):
    """QMIX's monotonic mixing network: Q_tot = w2(s)^T elu(W1(s)^T q + b1(s)) + V(s)."""

    def __init__(self, n_agents: int, state_dim: int, embed: int = 32, hyper: int = 64) -> None:
        super().__init__()
        self.n_agents, self.embed = n_agents, embed
        self.hyper_w1 = nn.Sequential(
            nn.Linear(state_dim, hyper), nn.ReLU(), nn.Linear(hyper, n_agents * embed)
        )
        self.hyper_b1 = nn.Linear(state_dim, embed)
        self.hyper_w2 = nn.Sequential(
            nn.Linear(state_dim, hyper), nn.ReLU(), nn.Linear(hyper, embed)
        )
        self.value = nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, 1))

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``q`` (B, N), ``state`` (B, S) -> Q_tot (B,)."""
        w1 = self.hyper_w1(state).abs().view(-1, self.n_agents, self.embed)
        hidden = nn.functional.elu(torch.bmm(q.unsqueeze(1), w1).squeeze(1) + self.hyper_b1(state))
        w2 = self.hyper_w2(state).abs()
        return (hidden * w2).sum(-1) + self.value(state).squeeze(-1)


class ShapeWeights(nn.Module):
    """DMIX's non-negative, state-dependent weight of each agent's shape."""

    def __init__(self, n_agents: int, state_dim: int, hyper: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim, hyper), nn.ReLU(), nn.Linear(hyper, n_agents))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state).abs()


class TeamValue(nn.Module):
    """``forward(means (B, N), shapes (B, N, K) | None, state (B, S)) -> (B, G, K)``.

    G is N for IQL (each agent's own value) and 1 for the factorisations; K is 1 for the
    expected-value mixers (``shapes`` is ignored) and the number of quantile levels for DDN
    and DMIX.
    """

    def __init__(self, kind: str, n_agents: int, state_dim: int, embed: int = 32) -> None:
        super().__init__()
        if kind not in MIXERS:
            raise ValueError(f"mixer {kind!r}: choose one of {', '.join(MIXERS)}")
        self.kind = kind
        self.mean_mixer = QMixer(n_agents, state_dim, embed) if kind in ("qmix", "dmix") else None
        self.shape_weights = ShapeWeights(n_agents, state_dim) if kind == "dmix" else None

    @property
    def distributional(self) -> bool:
        return self.kind in DISTRIBUTIONAL

    def mean(self, means: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The mean factorisation: (B, G)."""
        if self.kind == "none":
            return means
        if self.mean_mixer is not None:
            return self.mean_mixer(means, state).unsqueeze(-1)
        return means.sum(-1, keepdim=True)

    def forward(
        self, means: torch.Tensor, shapes: torch.Tensor | None, state: torch.Tensor
    ) -> torch.Tensor:
        mean = self.mean(means, state).unsqueeze(-1)  # (B, G, 1)
        if not self.distributional or shapes is None:
            return mean
        if self.shape_weights is not None:
            shapes = shapes * self.shape_weights(state).unsqueeze(-1)
        return mean + shapes.sum(1, keepdim=True)
