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
    """``create(env, seed, ...)``: build an SB3 algorithm with this project's defaults; save and
    load it as weights plus JSON, never pickles (``agents.persistence``).

    The constructor's keyword arguments are recorded, so that ``save`` can write the
    hyper-parameters and ``load`` rebuild the same model before loading its state dicts. Every
    SB3 algorithm behind this mixin (PPO, SAC, MEow, TDIL) gets this without code of its own:
    what it adds to SB3's state lives in its ``_get_torch_save_params``.
    """

    default_hyperparameters: ClassVar[dict[str, Any]] = {}

    def __init__(self, policy, env=None, **kwargs):
        self._constructor_kwargs = {"policy": policy, **kwargs}
        super().__init__(policy, env, **kwargs)

    def save(self, path, exclude=None, include=None) -> None:
        """Write ``path`` (a zip of ``driveenv_agent.json`` and ``weights.pt``) atomically."""
        from agents.persistence import save_agent

        save_agent(self, path)

    @classmethod
    def load(cls, path, env=None, device="auto", trust_pickles: bool = False, **kwargs):
        """The agent saved at ``path``, rebuilt from its JSON and weights (``weights_only``).

        ``trust_pickles=True`` also opens a checkpoint in Stable-Baselines3's own format, with
        SB3's loader: it unpickles the file's ``data`` entry, so a malicious file runs any code it
        carries. Use it only for a file you made or trust; without it such a file is refused.
        """
        from agents.persistence import load_agent_file

        def legacy():
            return super(SB3AgentMixin, cls).load(path, env=env, device=device, **kwargs)

        return load_agent_file(cls, path, env, device, trust_pickles, legacy)

    def save_replay_buffer(self, path) -> None:
        """The replay buffer as arrays (npz, no pickle)."""
        from agents.persistence import save_replay_buffer

        save_replay_buffer(self.replay_buffer, path)

    def load_replay_buffer(self, path, truncate_last_traj=True, trust_pickles: bool = False):
        """Fill the replay buffer from ``save_replay_buffer``'s npz.

        ``trust_pickles=True`` opens a pickled SB3 buffer with SB3's loader, which runs any code
        the file holds: only for a file you made or trust.
        """
        from agents.persistence import PICKLE_RISK, load_replay_buffer

        if zipfile.is_zipfile(path):
            return load_replay_buffer(self.replay_buffer, path)
        if not trust_pickles:
            raise CheckpointError(f"{path}: not an npz replay buffer (a pickle?), {PICKLE_RISK}")
        return super().load_replay_buffer(path, truncate_last_traj)

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


def load_checkpoint(cls, path: str | Path, env=None, trust_pickles: bool = False, **kwargs):
    """``cls.load(path, env)``, with every failure to read it as a ``CheckpointError``.

    ``trust_pickles`` reaches SB3 agents only (see ``SB3AgentMixin.load`` for its risk); the
    torch agents' checkpoints never hold pickles.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if issubclass(cls, SB3AgentMixin):
        kwargs["trust_pickles"] = trust_pickles
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
