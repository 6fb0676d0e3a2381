"""Behaviour cloning: regress the expert's actions from its observations (state or images).

The policy is ``ObservationEncoder`` (``SmallCNN`` for images, the state vector as is) followed
by an MLP and ``tanh``, trained with mean squared error on the demonstrations' (observation,
action) pairs. It keeps SB3's agent shape: ``learn(total_timesteps)`` runs that many gradient
steps (BC never touches the environment), ``predict``, ``save``/``load``. The few lines of
supervised learning do not warrant a dependency (the ``imitation`` package would pull its own
pinned SB3 and gymnasium).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import nn

from agents.demos import Trajectory, load_demos
from agents.encoders import ObservationEncoder
from agents.errors import AgentError, CheckpointError, DemoError


@dataclass
class BCConfig:
    """Hyper-parameters of behaviour cloning."""

    hidden: list[int] = field(default_factory=lambda: [256, 256])
    learning_rate: float = 1e-3
    batch_size: int = 256
    weight_decay: float = 1e-5
    cnn_features_dim: int = 128


class ImitationPolicy(nn.Module):
    """Observation -> action in [-1, 1]: encoder, MLP, tanh."""

    def __init__(self, observation_space: spaces.Space, action_dim: int, config: BCConfig):
        super().__init__()
        self.observation_space = observation_space
        self.encoder = ObservationEncoder(observation_space, config.cnn_features_dim)
        layers: list[nn.Module] = []
        previous = self.encoder.features_dim
        for width in config.hidden:
            layers += [nn.Linear(previous, width), nn.ReLU()]
            previous = width
        layers.append(nn.Linear(previous, action_dim))
        self.head = nn.Sequential(*layers)

    def forward(self, observations) -> torch.Tensor:
        obs = preprocess_obs(observations, self.observation_space)  # uint8 images -> [0, 1]
        return torch.tanh(self.head(self.encoder(obs)))


def transitions_from(trajectories: list[Trajectory], keys: list[str] | None = None):
    """All (observation, action) pairs of ``trajectories`` as ({key: array}, actions)."""
    if not trajectories:
        raise DemoError("no demonstrations given")
    keys = keys or sorted(trajectories[0].observations)
    missing = [key for key in keys if key not in trajectories[0].observations]
    if missing:
        raise DemoError(
            f"demonstrations lack observation key(s) {missing}; "
            f"they have {sorted(trajectories[0].observations)}"
        )
    obs = {key: np.concatenate([t.observations[key][:-1] for t in trajectories]) for key in keys}
    actions = np.concatenate([t.actions for t in trajectories]).astype(np.float32)
    return obs, actions


def space_to_spec(space: spaces.Space) -> dict[str, Any]:
    """A JSON/weights-only-safe description of a Box or Dict space (bounds as min/max)."""
    if isinstance(space, spaces.Dict):
        return {"dict": {key: space_to_spec(sub) for key, sub in space.spaces.items()}}
    return {
        "shape": list(space.shape),
        "dtype": str(space.dtype),
        "low": float(np.min(space.low)),
        "high": float(np.max(space.high)),
    }


def space_from_spec(spec: dict[str, Any]) -> spaces.Space:
    if "dict" in spec:
        return spaces.Dict({key: space_from_spec(sub) for key, sub in spec["dict"].items()})
    return spaces.Box(spec["low"], spec["high"], tuple(spec["shape"]), np.dtype(spec["dtype"]))


class BCAgent:
    """Behaviour cloning with SB3's agent shape."""

    algorithm = "bc"

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        config: BCConfig | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(observation_space, spaces.Dict):
            observation_space = spaces.Dict({"obs": observation_space})
        self.observation_space = observation_space
        self.action_space = action_space
        self.config = config or BCConfig()
        self.seed = seed
        torch.manual_seed(seed)
        self.policy = ImitationPolicy(
            observation_space, int(np.prod(action_space.shape)), self.config
        )
        self.optimizer = torch.optim.Adam(
            self.policy.parameters(),
            lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
        )
        self._rng = np.random.default_rng(seed)
        self._data: tuple[dict[str, np.ndarray], np.ndarray] | None = None
        self.num_timesteps = 0
        self.logger = None

    @classmethod
    def create(cls, env, seed: int = 0, tensorboard_log=None, demos=None, **overrides):
        """A BC agent for ``env``'s spaces, with ``demos`` (a path or trajectories) to learn from."""
        agent = cls(env.observation_space, env.action_space, BCConfig(**overrides), seed)
        agent.tensorboard_log = tensorboard_log
        if demos is not None:
            agent.set_demonstrations(demos)
        return agent

    def set_demonstrations(self, demos: str | Path | list[Trajectory]) -> None:
        trajectories = load_demos(demos) if isinstance(demos, str | Path) else list(demos)
        if "obs" in self.observation_space.spaces and len(self.observation_space.spaces) == 1:
            for t in trajectories:
                if "obs" not in t.observations and len(t.observations) == 1:
                    t.observations = {"obs": next(iter(t.observations.values()))}
        self._data = transitions_from(trajectories, sorted(self.observation_space.spaces))

    def _tensor_obs(self, obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {key: torch.as_tensor(np.asarray(value)) for key, value in obs.items()}

    def train_step(self, indices: np.ndarray) -> float:
        obs, actions = self._data
        batch = self._tensor_obs({key: value[indices] for key, value in obs.items()})
        target = torch.as_tensor(actions[indices])
        loss = nn.functional.mse_loss(self.policy(batch), target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def learn(self, total_timesteps: int, callback=None, **_ignored) -> BCAgent:
        """``total_timesteps`` gradient steps on minibatches of the demonstrations."""
        if self._data is None:
            raise AgentError("BC needs demonstrations: create(env, demos=PATH) first")
        n = len(self._data[1])
        self.policy.train()
        for _ in range(int(total_timesteps)):
            indices = self._rng.integers(0, n, size=min(self.config.batch_size, n))
            self.last_loss = self.train_step(indices)
            self.num_timesteps += 1
            if callback is not None and callback(self) is False:
                break
        self.policy.eval()
        return self

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Actions for one observation or a batch, SB3-shaped ``(actions, None)``."""
        obs = observation if isinstance(observation, dict) else {"obs": observation}
        obs = {key: np.asarray(obs[key]) for key in self.observation_space.spaces}
        first_key = next(iter(self.observation_space.spaces))
        single = obs[first_key].shape == self.observation_space[first_key].shape
        if single:
            obs = {key: value[None] for key, value in obs.items()}
        self.policy.eval()
        with torch.no_grad():
            actions = self.policy(self._tensor_obs(obs)).numpy()
        low, high = self.action_space.low, self.action_space.high
        actions = low + 0.5 * (actions + 1.0) * (high - low)
        return (actions[0] if single else actions), None

    def save(self, path: str | Path) -> None:
        from common.atomic import atomic_path

        payload = {
            "algorithm": self.algorithm,
            "config": asdict(self.config),
            "seed": self.seed,
            "observation_space": space_to_spec(self.observation_space),
            "action_space": space_to_spec(self.action_space),
            "state_dict": self.policy.state_dict(),
            "num_timesteps": self.num_timesteps,
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path, env=None, **_ignored) -> BCAgent:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for a bad file
            raise CheckpointError(f"{path}: not a readable BC checkpoint ({error})") from None
        if not isinstance(payload, dict) or payload.get("algorithm") != cls.algorithm:
            found = payload.get("algorithm") if isinstance(payload, dict) else type(payload)
            raise CheckpointError(f"{path}: a {found!r} checkpoint, not {cls.algorithm!r}")
        agent = cls(
            space_from_spec(payload["observation_space"]),
            space_from_spec(payload["action_space"]),
            BCConfig(**payload["config"]),
            payload["seed"],
        )
        agent.policy.load_state_dict(payload["state_dict"])
        agent.num_timesteps = payload["num_timesteps"]
        agent.policy.eval()
        return agent
