"""Demonstrations as training data for the diffusion agents: action scaling and chunk batches.

Shared by the Diffusion Policy, Q-score matching and DxMI agents, which all learn action chunks
in [-1, 1] from windows of recorded observations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from gymnasium import spaces

from agents.errors import AgentError, DemoError

if TYPE_CHECKING:
    from agents.diffusion_policy import ObservationSpec


@dataclass
class ActionScaler:
    """Affine map between the action space and [-1, 1]."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_space(cls, space: spaces.Space) -> ActionScaler:
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise AgentError(f"diffusion agents need a vector Box action space, got {space}")
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise AgentError("diffusion agents need a bounded action space (finite low/high)")
        return cls(space.low.astype(np.float32), space.high.astype(np.float32))

    def normalise(self, actions: np.ndarray) -> np.ndarray:
        return 2 * (actions - self.low) / (self.high - self.low) - 1

    def denormalise(self, actions: np.ndarray) -> np.ndarray:
        return self.low + (np.clip(actions, -1, 1) + 1) * 0.5 * (self.high - self.low)


# ------------------------------------------------------------------------------------------------
# Demonstrations -> training windows


class ChunkDataset:
    """Every (observation window, action chunk) pair of the demonstrations, gathered by index.

    Windows that reach before the episode start repeat the first observation; chunks that run
    past its end repeat the last action (Chi et al.'s padding).
    """

    def __init__(self, demos, spec: ObservationSpec, scaler: ActionScaler, config) -> None:
        if not demos:
            raise DemoError("no demonstrations to learn from")
        obs_index, act_index = [], []
        observations = {key: [] for key in spec.vector_keys + spec.image_keys}
        actions = []
        obs_offset = act_offset = 0
        past = np.arange(-config.obs_horizon + 1, 1)
        future = np.arange(config.pred_horizon)
        for number, demo in enumerate(demos):
            obs = spec.as_dict(demo.observations)
            missing = [key for key in observations if key not in obs]
            if missing:
                raise DemoError(f"demonstration {number} lacks observation keys {missing}")
            length = len(demo.actions)
            if length == 0:
                continue
            for key in observations:
                observations[key].append(np.asarray(obs[key][:length]))
            actions.append(scaler.normalise(np.asarray(demo.actions, dtype=np.float32)))
            steps = np.arange(length)
            obs_index.append(obs_offset + np.clip(steps[:, None] + past, 0, length - 1))
            act_index.append(act_offset + np.clip(steps[:, None] + future, 0, length - 1))
            obs_offset += length
            act_offset += length
        if not actions:
            raise DemoError("the demonstrations hold no actions")
        self.observations = {
            key: torch.from_numpy(np.concatenate(values)) for key, values in observations.items()
        }
        self.actions = torch.from_numpy(np.concatenate(actions).astype(np.float32))
        self.obs_index = torch.from_numpy(np.concatenate(obs_index))
        self.act_index = torch.from_numpy(np.concatenate(act_index))

    def __len__(self) -> int:
        return len(self.act_index)

    def vectors(self, spec: ObservationSpec) -> torch.Tensor:
        return torch.cat([self.observations[key].float() for key in spec.vector_keys], dim=-1)

    def batch(self, rows: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        obs_rows = self.obs_index[rows]
        obs = {key: values[obs_rows] for key, values in self.observations.items()}
        return obs, self.actions[self.act_index[rows]]


# ------------------------------------------------------------------------------------------------
# The agent
