"""Replay of whole episodes, as PyMARL keeps them, so recurrent agents can be unrolled.

Each stored episode is padded to ``max_steps``: observations, global states and available
actions at steps 0..T, actions, team rewards and the terminated flag at steps 0..T-1, and a
``filled`` mask of the real steps. A sampled batch is cut to its longest episode.
"""

from __future__ import annotations

import numpy as np
import torch


class EpisodeBuffer:
    """A ring of ``capacity`` padded episodes."""

    def __init__(self, capacity, max_steps, n_agents, obs_dim, state_dim, n_actions) -> None:
        self.capacity, self.max_steps = int(capacity), int(max_steps)
        c, t, n = self.capacity, self.max_steps, n_agents
        self.obs = np.zeros((c, t + 1, n, obs_dim), np.float32)
        self.state = np.zeros((c, t + 1, state_dim), np.float32)
        self.avail = np.zeros((c, t + 1, n, n_actions), np.float32)
        self.actions = np.zeros((c, t, n), np.int64)
        self.reward = np.zeros((c, t), np.float32)
        self.terminated = np.zeros((c, t), np.float32)
        self.filled = np.zeros((c, t), np.float32)
        self.lengths = np.zeros(c, np.int64)
        self.position, self.size = 0, 0

    def add(self, episode: dict[str, np.ndarray]) -> None:
        """Store one episode: ``obs``/``state``/``avail`` of length T+1, the rest of length T."""
        i, steps = self.position, len(episode["reward"])
        if steps > self.max_steps:
            raise ValueError(f"episode of {steps} steps in a buffer of {self.max_steps}")
        for name in ("obs", "state", "avail"):
            target = getattr(self, name)[i]
            target[:] = 0.0
            target[: steps + 1] = episode[name]
        for name in ("actions", "reward", "terminated"):
            target = getattr(self, name)[i]
            target[:] = 0
            target[:steps] = episode[name]
        self.filled[i] = 0.0
        self.filled[i, :steps] = 1.0
        self.lengths[i] = steps
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """``batch`` episodes drawn uniformly, as tensors cut to the longest one."""
        index = rng.integers(0, self.size, size=batch)
        t = int(self.lengths[index].max())
        arrays = {
            "obs": self.obs[index, : t + 1],
            "state": self.state[index, : t + 1],
            "avail": self.avail[index, : t + 1],
            "actions": self.actions[index, :t],
            "reward": self.reward[index, :t],
            "terminated": self.terminated[index, :t],
            "filled": self.filled[index, :t],
        }
        return {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}
