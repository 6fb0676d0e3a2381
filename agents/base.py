"""The one agent interface (Stable-Baselines3's shape) and what every agent shares.

Every agent has ``learn(total_timesteps, callback=None)``, ``predict(obs, deterministic=True)
-> (action, state)``, ``save(path)`` and ``AgentClass.load(path, env=None)``. PPO, SAC, MEow and
TDIL are SB3 algorithms (``SB3AgentMixin`` adds the project's defaults: the policy matching the
observation space, ``ObservationEncoder`` for Dict observations, seeded, TensorBoard); BC and
the diffusion agents are plain torch models with the same four methods.

``load_checkpoint`` turns whatever a broken or foreign file raises deep inside zipfile/torch into
one ``CheckpointError`` naming the file.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from gymnasium import spaces

from agents.encoders import ObservationEncoder
from agents.errors import CheckpointError


@runtime_checkable
class Agent(Protocol):
    """What the training driver, ``load_agent`` and eval rely on."""

    def learn(self, total_timesteps: int, callback=None, **kwargs): ...

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False): ...

    def save(self, path) -> None: ...


def default_policy(observation_space: spaces.Space) -> str:
    """SB3's policy alias for an observation space."""
    return "MultiInputPolicy" if isinstance(observation_space, spaces.Dict) else "MlpPolicy"


class SB3AgentMixin:
    """``create(env, seed, ...)``: build an SB3 algorithm with this project's defaults."""

    default_hyperparameters: ClassVar[dict[str, Any]] = {}

    @classmethod
    def create(cls, env, seed: int = 0, tensorboard_log: str | None = None, **overrides):
        kwargs = {**cls.default_hyperparameters, **overrides}
        policy = kwargs.pop("policy", None) or default_policy(env.observation_space)
        policy_kwargs = dict(kwargs.pop("policy_kwargs", None) or {})
        if isinstance(env.observation_space, spaces.Dict):
            policy_kwargs.setdefault("features_extractor_class", ObservationEncoder)
        return cls(
            policy,
            env,
            seed=seed,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            **kwargs,
        )


def read_torch_checkpoint(path: str | Path, kind: str) -> dict:
    """The dict saved with ``torch.save`` at ``path``; any failure is one ``CheckpointError``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a foreign or broken file
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: not a readable {kind} checkpoint ({reason})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a {kind} checkpoint")
    return data


def load_checkpoint(cls, path: str | Path, env=None, **kwargs):
    """``cls.load(path, env)``, with every failure to read it as a ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return cls.load(path, env=env, **kwargs)
    except CheckpointError:
        raise
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        KeyError,
        ValueError,
        RuntimeError,
        TypeError,
        AttributeError,
        pickle.UnpicklingError,
    ) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(
            f"{path}: not a readable {cls.__name__} checkpoint ({reason[:200]})"
        ) from None
