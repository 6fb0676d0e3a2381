"""The agents' utility network, shared by all agents (parameter sharing).

One network serves every agent: its input is the agent's observation, the one-hot of the
agent's index (so shared weights can still act differently per agent) and the one-hot of the
agent's previous action, as in QMIX (Rashid et al. 2018). A fully connected layer and, when
``recurrent``, a GRU cell (DRQN) give the history embedding h.

Distributional utilities are IQN quantile functions (Dabney et al. 2018): for quantile levels
tau, the embedding phi(tau) = ReLU(W [cos(pi i tau)]_{i<64} + b) multiplies h, and a head maps
the product to one quantile value Z_i(h, u, tau) per action u. Expected-value utilities skip the
quantile embedding and map h to Q_i(h, u) directly; they are returned with a quantile axis of
length 1, so the learners treat both the same way.
"""

from __future__ import annotations

import math

import torch
from torch import nn

COSINES = 64  # cosine features of a quantile level


class UtilityNetwork(nn.Module):
    """Per-agent utilities: ``forward(inputs, hidden, taus) -> (values (B, K, A), hidden)``."""

    def __init__(
        self,
        input_dim: int,
        n_actions: int,
        hidden: int = 64,
        recurrent: bool = False,
        distributional: bool = True,
    ) -> None:
        super().__init__()
        self.hidden, self.recurrent, self.distributional = hidden, recurrent, distributional
        self.encoder = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU())
        self.core = nn.GRUCell(hidden, hidden) if recurrent else nn.Linear(hidden, hidden)
        if distributional:
            self.tau_embedding = nn.Sequential(nn.Linear(COSINES, hidden), nn.ReLU())
            self.register_buffer("frequencies", math.pi * torch.arange(COSINES).float())
        self.head = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_actions)
        )

    def initial_hidden(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.hidden)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor | None, taus: torch.Tensor | None):
        """``inputs`` (B, D); ``hidden`` (B, H) or None; ``taus`` (G, K) or (K,) in (0, 1), or None.

        G groups of consecutive rows (G divides B) share one set of levels, whose embedding is
        computed once per group; levels of shape (K,) serve the whole batch.
        Returns utilities (B, K, A) (K = 1 for expected-value utilities) and the new hidden state.
        """
        x = self.encoder(inputs)
        if self.recurrent:
            hidden = self.core(x, hidden if hidden is not None else self.initial_hidden(len(x)))
            h = hidden
        else:
            h = torch.relu(self.core(x))
        if not self.distributional:
            return self.head(h).unsqueeze(1), hidden
        phi = self.tau_embedding(torch.cos(taus.unsqueeze(-1) * self.frequencies))  # ([G,] K, H)
        phi = phi.view(-1, *phi.shape[-2:])
        grouped = h.view(len(phi), -1, 1, self.hidden) * phi.unsqueeze(1)  # (G, B / G, K, H)
        return self.head(grouped.view(len(h), -1, self.hidden)), hidden
