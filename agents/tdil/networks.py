"""TDIL's discriminators: a pair scorer over state embeddings, and what it is shown.

``PairDiscriminator`` scores a state pair ``(s, s')``; TDIL trains one as the transition
discriminator (can the environment go from ``s`` to ``s'`` in one step?) and, optionally, one as
the IRL discriminator (is ``(s, s')`` the expert's transition?). ``discriminator_columns`` picks
the part of the simulator's state they see.
"""

from __future__ import annotations

import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import nn
from torch.nn import functional as F

from agents.encoders import ObservationEncoder
from agents.errors import AgentError
from simulator.sensors import STATE_FIELDS

# What the discriminators see. "egocentric": the state fields that mean the same wherever the
# episode is (the goal in the vehicle's frame, speed, steering), not the world-frame heading and
# position, the elapsed time or the completion (the share of the spawn's distance closed: the
# same distance to the goal is a different completion from every other spawn), which differ
# between the demonstration's spawn and the agent's; "state": the whole state vector; "all":
# every observation key (scan, images).
EGOCENTRIC_STATE_FIELDS = (
    "target_x",
    "target_y",
    "goal_distance",
    "target_bearing_cos",
    "target_bearing_sin",
    "speed",
    "yaw_rate",
    "steer",
)
DISCRIMINATOR_FEATURES = ("egocentric", "state", "all")


def discriminator_columns(space: spaces.Space, features: str) -> list[int] | None:
    """Columns of the ``state`` observation the discriminators see (None: every key whole)."""
    has_state = isinstance(space, spaces.Dict) and "state" in space.spaces
    if features == "all" or not has_state:
        return None
    if space["state"].shape != (len(STATE_FIELDS),):
        raise AgentError(
            f"discriminator_features={features!r} needs the simulator's "
            f"{len(STATE_FIELDS)}-field state, got shape {space['state'].shape}"
        )
    if features == "state":
        return list(range(len(STATE_FIELDS)))
    return [STATE_FIELDS.index(name) for name in EGOCENTRIC_STATE_FIELDS]


class PairDiscriminator(nn.Module):
    """Logit of a state pair ``(s, s')``: each state is embedded once, a small head scores pairs.

    The head is one hidden layer on the concatenated embeddings, written as the sum of a
    projection of each (``W [e, e'] = W_1 e + W_2 e'``), so scoring every agent state against
    every expert state (the surrogate reward, B x E pairs) embeds B + E states and then costs
    one broadcast addition and a dot product per pair instead of a deep MLP per pair.

    ``state_columns``: see only these columns of the ``state`` observation (no other key).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        state_columns: list[int] | None = None,
        hidden: int = 128,
        embed: int = 64,
        pair_hidden: int = 128,
    ):
        super().__init__()
        self.state_columns = state_columns
        if state_columns is not None:
            state = observation_space["state"]
            observation_space = spaces.Dict(
                {
                    "state": spaces.Box(
                        state.low[state_columns], state.high[state_columns], dtype=state.dtype
                    )
                }
            )
        self.observation_space = observation_space
        self.encoder = ObservationEncoder(observation_space, cnn_features_dim=64)
        self.embedding = nn.Sequential(
            nn.Linear(self.encoder.features_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, embed),
        )
        self.first = nn.Linear(embed, pair_hidden)  # projection of s (carries the bias)
        self.second = nn.Linear(embed, pair_hidden, bias=False)  # projection of s'
        self.out = nn.Linear(pair_hidden, 1)

    def features(self, obs) -> torch.Tensor:
        """The inputs (B, F) of the embedding: selected state fields, CNN features of images."""
        if self.state_columns is not None:
            obs = {"state": obs["state"][:, self.state_columns]}
        return self.encoder(preprocess_obs(obs, self.observation_space))

    def encode(self, obs) -> torch.Tensor:
        """Embeddings (B, embed) of a batch of observations."""
        return self.embedding(self.features(obs))

    def gradient_penalty(self, real: tuple, fake: tuple) -> torch.Tensor:
        """``(|grad logit| - 1)^2`` at random mixtures of real and fake pairs of features.

        As in DAC (Kostrikov et al. 2019, after WGAN-GP): it keeps a discriminator trained on
        one demonstration from separating expert and agent perfectly, where its reward would be
        zero on every agent transition and carry no direction. (Image features are mixed after
        the CNN, which this does not regularise.)
        """
        mix = torch.rand(real[0].shape[0], 1, device=real[0].device)
        first, second = (
            (mix * r + (1 - mix) * f).detach().requires_grad_(True)
            for r, f in zip(real, fake, strict=True)
        )
        logits = self.pair_logits(self.embedding(first), self.embedding(second))
        grads = torch.autograd.grad(logits.sum(), (first, second), create_graph=True)
        return ((torch.cat(grads, dim=1).norm(dim=1) - 1) ** 2).mean()

    def pair_logits(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Logits (B,) for embedded states ``first`` (B, F) and ``second`` (B, F), row by row."""
        return self.out(F.relu(self.first(first) + self.second(second))).squeeze(1)

    def all_pair_logits(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Logits (B, E) of every pair of ``first`` (B, F) with ``second`` (E, F)."""
        hidden = (self.first(first)[:, None, :] + self.second(second)[None, :, :]).relu_()
        return self.out(hidden).squeeze(2)


def bce(logits: torch.Tensor, label: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))
