"""Saving SB3 agents as weights plus JSON, never as pickles.

Stable-Baselines3's own ``save`` writes a zip whose ``data`` entry holds cloudpickled objects
(the policy class, the spaces, the learning-rate schedule), and ``save_replay_buffer`` pickles the
buffer: opening either runs whatever code the file carries. Agents are what people share, so
DriveEnv writes instead:

- ``agent.zip`` with two entries: ``driveenv_agent.json`` (the agent class, its constructor's
  hyper-parameters, the observation and action spaces, the step counters) and ``weights.pt``
  (every module's and optimiser's state dict and SB3's extra tensors, read back with
  ``torch.load(weights_only=True)``, which builds tensors and plain containers only). Loading
  rebuilds the model from the class and the saved hyper-parameters, then loads the state dicts.
- ``replay_buffer.npz``: the filled part of the buffer as arrays (read with
  ``allow_pickle=False``).

Classes named in hyper-parameters (the features extractor, activations, optimisers) are written
by name and read back only from ``ALLOWED_CLASSES``; nothing is imported by a name from a file.
A checkpoint in SB3's pickled format, or a ``replay_buffer.pkl``, is refused with one line unless
the caller passes ``trust_pickles=True``: that opens it with SB3's pickle-based loader, which
runs any code the file holds, so it is only for files the user made or otherwise trusts.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from agents.errors import CheckpointError
from common.atomic import atomic_path

FORMAT = "driveenv-sb3-agent"
FORMAT_VERSION = 1
META_ENTRY = "driveenv_agent.json"
WEIGHTS_ENTRY = "weights.pt"
REPLAY_BUFFER_FILE = "replay_buffer.npz"
LEGACY_REPLAY_BUFFER_FILE = "replay_buffer.pkl"
# constructor arguments that are not the agent's hyper-parameters (or are saved elsewhere)
NOT_HYPERPARAMETERS = frozenset(
    {"env", "device", "_init_setup_model", "tensorboard_log", "verbose", "seed", "demos", "policy"}
)
COUNTERS = ("num_timesteps", "_n_updates", "_episode_num", "_current_progress_remaining")
BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
DTYPE_KINDS = "biuf"  # bool, int, uint, float: the only dtypes a space may have here
PICKLE_RISK = (
    "which runs code when opened; refused (pass trust_pickles=True, or --trust-pickles, "
    "only for a file you made or trust)"
)


def _allowed_classes() -> dict[str, type]:
    """The classes a checkpoint may name, by ``module:qualname``."""
    import torch
    from stable_baselines3.common import buffers, torch_layers

    from agents.encoders import ObservationEncoder

    classes = [
        ObservationEncoder,
        torch_layers.FlattenExtractor,
        torch_layers.NatureCNN,
        torch_layers.CombinedExtractor,
        buffers.ReplayBuffer,
        buffers.DictReplayBuffer,
        *(getattr(torch.nn, n) for n in ("ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU")),
        *(getattr(torch.optim, n) for n in ("Adam", "AdamW", "SGD", "RMSprop")),
    ]
    return {f"{c.__module__}:{c.__qualname__}": c for c in classes}


# --------------------------------------------------------------------------- JSON values
def encode(value: Any, where: str) -> Any:
    """``value`` as JSON: tuples, classes and non-finite floats tagged with ``"$type"``."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if np.isfinite(value) else {"$type": "float", "value": repr(value)}
    if isinstance(value, list):
        return [encode(v, where) for v in value]
    if isinstance(value, tuple):
        return {"$type": "tuple", "items": [encode(v, where) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value) and "$type" not in value:
        return {k: encode(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, type):
        name = f"{value.__module__}:{value.__qualname__}"
        if name in _allowed_classes():
            return {"$type": "class", "name": name}
    raise CheckpointError(f"hyper-parameter {where}={value!r} cannot be saved as JSON")


def decode(value: Any, where: str) -> Any:
    """The inverse of ``encode``; a class is looked up in ``ALLOWED_CLASSES`` only."""
    if isinstance(value, list):
        return [decode(v, where) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("$type")
    if kind is None:
        return {k: decode(v, f"{where}.{k}") for k, v in value.items()}
    if kind == "tuple" and isinstance(value.get("items"), list):
        return tuple(decode(v, where) for v in value["items"])
    if kind == "float" and value.get("value") in ("inf", "-inf", "nan"):
        return float(value["value"])
    if kind == "class" and value.get("name") in _allowed_classes():
        return _allowed_classes()[value["name"]]
    raise CheckpointError(f"{where}: {json.dumps(value)[:80]} is not a value a checkpoint may hold")


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A Box, Discrete, MultiDiscrete, MultiBinary or Dict space, exactly, as JSON."""
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    if isinstance(space, spaces.Box):
        bounds = {
            name: [encode(x, name) for x in np.asarray(getattr(space, name)).ravel().tolist()]
            for name in ("low", "high")
        }
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype), **bounds}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    raise CheckpointError(f"cannot save an agent for a {type(space).__name__} space")


def space_from_json(data: Any, where: str) -> spaces.Space:
    """The space ``space_to_json`` wrote; ``CheckpointError`` naming ``where`` if malformed."""
    try:
        kind = data["type"]
        if kind == "Dict":
            return spaces.Dict(
                {str(k): space_from_json(s, where) for k, s in data["spaces"].items()}
            )
        if kind == "Box":
            dtype = np.dtype(str(data["dtype"]))
            shape = tuple(int(n) for n in data["shape"])
            if dtype.kind not in DTYPE_KINDS or any(n < 0 for n in shape):
                raise ValueError(f"Box of {dtype} {shape}")
            low, high = (
                np.array([decode(x, where) for x in data[name]], np.float64).reshape(shape)
                for name in ("low", "high")
            )
            return spaces.Box(low.astype(dtype), high.astype(dtype), shape, dtype)
        if kind == "Discrete":
            return spaces.Discrete(int(data["n"]), start=int(data["start"]))
        if kind == "MultiDiscrete":
            return spaces.MultiDiscrete(np.asarray(data["nvec"], dtype=np.int64))
        if kind == "MultiBinary":
            return spaces.MultiBinary(np.asarray(data["n"], dtype=np.int64).tolist())
    except CheckpointError:
        raise
    except Exception as error:  # KeyError, TypeError, ValueError from a malformed description
        raise CheckpointError(f"{where}: malformed space ({_first_line(error)})") from None
    raise CheckpointError(f"{where}: unknown space type {str(kind)[:40]!r}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


# --------------------------------------------------------------------------- agents
def hyperparameters_of(agent) -> dict[str, Any]:
    """The constructor arguments ``SB3AgentMixin`` recorded, minus what is not a setting."""
    recorded = getattr(agent, "_constructor_kwargs", None)
    if recorded is None:
        raise CheckpointError(f"{type(agent).__name__}: built without SB3AgentMixin's constructor")
    return {k: v for k, v in recorded.items() if k not in NOT_HYPERPARAMETERS}


def _policy_alias(agent) -> str:
    policy = agent._constructor_kwargs.get("policy")
    if isinstance(policy, str):
        return policy
    names = [alias for alias, cls in agent.policy_aliases.items() if cls is policy]
    if not names:
        raise CheckpointError(f"policy {policy!r} has no alias in {type(agent).__name__}")
    return names[0]


def save_agent(agent, path: str | Path) -> None:
    """Write ``agent`` (an ``SB3AgentMixin`` algorithm) as ``driveenv_agent.json`` + ``weights.pt``."""
    import torch
    from stable_baselines3.common.save_util import recursive_getattr

    _, variables = agent._get_torch_save_params()
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(agent).__name__,
        "policy": _policy_alias(agent),
        "seed": agent.seed,
        "hyperparameters": encode(hyperparameters_of(agent), "hyperparameters"),
        "observation_space": space_to_json(agent.observation_space),
        "action_space": space_to_json(agent.action_space),
        "n_envs": int(agent.n_envs),
        "counters": {name: getattr(agent, name) for name in COUNTERS},
    }
    weights = io.BytesIO()
    tensors = {name: recursive_getattr(agent, name) for name in variables}
    torch.save({"parameters": agent.get_parameters(), "variables": tensors}, weights)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        archive.writestr(META_ENTRY, json.dumps(meta, indent=2))
        archive.writestr(WEIGHTS_ENTRY, weights.getvalue())


def _read_archive(path: Path, trust_pickles: bool) -> tuple[dict[str, Any], bytes] | None:
    """The JSON and weights of a DriveEnv checkpoint; None for a trusted SB3 (pickled) one."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if META_ENTRY not in names:
                if "data" in names:
                    if trust_pickles:
                        return None
                    raise CheckpointError(
                        f"{path}: a Stable-Baselines3 checkpoint whose 'data' entry holds "
                        f"pickled Python objects, {PICKLE_RISK}"
                    )
                raise CheckpointError(f"{path}: not a DriveEnv agent checkpoint (no {META_ENTRY})")
            meta = json.loads(archive.read(META_ENTRY))
            weights = archive.read(WEIGHTS_ENTRY)
    except CheckpointError:
        raise
    except Exception as error:  # zipfile, KeyError, JSON and decoding errors of a broken file
        raise CheckpointError(
            f"{path}: not a readable agent checkpoint ({_first_line(error)})"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: {META_ENTRY} is not a {FORMAT} description")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {meta.get('format_version')!r} unknown")
    return meta, weights


def load_agent_file(
    cls, path: str | Path, env=None, device="auto", trust_pickles=False, legacy=None
):
    """The agent of class ``cls`` saved at ``path`` by ``save_agent``.

    ``legacy()`` (SB3's pickle-based ``load``) is called for an SB3-format checkpoint only when
    ``trust_pickles`` is given; otherwise such a file is one ``CheckpointError``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    found = _read_archive(path, trust_pickles)
    if found is None:
        return legacy()
    meta, weights = found
    if meta.get("class") != cls.__name__:
        raise CheckpointError(f"{path}: holds a {meta.get('class')!r} agent, not a {cls.__name__}")
    try:
        return _rebuild(cls, path, meta, weights, env, device)
    except CheckpointError:
        raise
    except Exception as error:  # what SB3 and torch raise for values that do not fit together
        raise CheckpointError(
            f"{path}: cannot rebuild the {cls.__name__} it describes ({_first_line(error)})"
        ) from None


def _rebuild(cls, path: Path, meta: dict[str, Any], weights: bytes, env, device):
    import torch
    from stable_baselines3.common.save_util import recursive_setattr
    from stable_baselines3.common.utils import check_for_correct_spaces

    observation_space = space_from_json(meta["observation_space"], f"{path}: observation_space")
    action_space = space_from_json(meta["action_space"], f"{path}: action_space")
    hyperparameters = decode(meta["hyperparameters"], f"{path}: hyperparameters")
    if not isinstance(hyperparameters, dict) or set(hyperparameters) & NOT_HYPERPARAMETERS:
        raise CheckpointError(f"{path}: hyperparameters must be an object of settings")
    if meta["policy"] not in cls.policy_aliases:
        raise CheckpointError(f"{path}: unknown policy {str(meta['policy'])[:40]!r}")
    if env is not None:
        env = cls._wrap_env(env, 0)
        try:
            check_for_correct_spaces(env, observation_space, action_space)
        except ValueError as error:
            raise CheckpointError(f"{path}: {_first_line(error)}") from None
    seed = meta.get("seed")
    model = cls(
        meta["policy"],
        env,
        device=device,
        seed=seed if isinstance(seed, int) else None,
        _init_setup_model=False,
        **hyperparameters,
    )
    if env is None:  # SB3's _setup_model reads the spaces (SAC: from self.env) only
        model.observation_space, model.action_space = observation_space, action_space
        model.n_envs = int(meta["n_envs"])
        model.env = _Spaces(observation_space, action_space, model.n_envs)
    try:
        model._setup_model()
    finally:
        if isinstance(model.env, _Spaces):
            model.env = None
    state = torch.load(io.BytesIO(weights), map_location=model.device, weights_only=True)
    expected, variables = model._get_torch_save_params()
    if set(state["parameters"]) != set(expected) or set(state["variables"]) != set(variables):
        raise CheckpointError(f"{path}: its weights are not those of a {cls.__name__}")
    model.set_parameters(state["parameters"], exact_match=True, device=model.device)
    for name, tensor in state["variables"].items():
        if tensor is not None:
            recursive_setattr(model, f"{name}.data", tensor.data)
    for name in COUNTERS:
        value = meta["counters"][name]
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise CheckpointError(f"{path}: counter {name} is not a number")
        setattr(model, name, type(getattr(model, name))(value))
    return model


class _Spaces:
    """Stands in for the environment while a model loaded without one is set up."""

    def __init__(self, observation_space, action_space, num_envs: int):
        self.observation_space, self.action_space, self.num_envs = (
            observation_space,
            action_space,
            num_envs,
        )

    def seed(self, seed=None) -> None:  # SB3's set_random_seed seeds the env too
        return None


# --------------------------------------------------------------------------- replay buffers
def save_replay_buffer(buffer, path: str | Path) -> None:
    """The filled part of an SB3 replay buffer, as an npz of arrays."""
    upper = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {"pos": np.array(buffer.pos), "full": np.array(buffer.full)}
    for name in BUFFER_ARRAYS:
        value = getattr(buffer, name, None)
        if isinstance(value, dict):
            arrays.update({f"{name}.{key}": array[:upper] for key, array in value.items()})
        elif value is not None:
            arrays[name] = value[:upper]
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, **arrays)


def load_replay_buffer(buffer, path: str | Path) -> None:
    """Fill ``buffer`` (as built for the agent) from ``save_replay_buffer``'s npz."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as error:  # OSError, ValueError, zipfile errors of a broken file
        raise CheckpointError(
            f"{path}: not a readable replay buffer ({_first_line(error)})"
        ) from None
    try:
        pos, full = int(arrays.pop("pos")), bool(arrays.pop("full"))
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path}: replay buffer without pos/full") from None
    upper = buffer.buffer_size if full else pos
    if not 0 <= pos < buffer.buffer_size:  # SB3 wraps pos to 0 when the buffer fills
        raise CheckpointError(f"{path}: position {pos} outside a buffer of {buffer.buffer_size}")
    targets = {}
    for name in BUFFER_ARRAYS:
        value = getattr(buffer, name, None)
        if isinstance(value, dict):
            targets.update({f"{name}.{key}": array for key, array in value.items()})
        elif value is not None:
            targets[name] = value
    if set(arrays) != set(targets):
        raise CheckpointError(
            f"{path}: holds {sorted(arrays)}, the agent's buffer {sorted(targets)}"
        )
    for name, target in targets.items():
        if arrays[name].shape != (upper, *target.shape[1:]) or arrays[name].dtype != target.dtype:
            raise CheckpointError(
                f"{path}: {name} is {arrays[name].dtype}{list(arrays[name].shape)}, "
                f"the agent's buffer needs {target.dtype}{[upper, *target.shape[1:]]}"
            )
    for name, target in targets.items():
        target[:upper] = arrays[name]
    buffer.pos, buffer.full = pos, full


def restore_replay_buffer(agent, run_dir: Path, trust_pickles: bool = False) -> None:
    """Load the run's replay buffer into ``agent`` if it has one; a pickled one only if trusted."""
    if getattr(agent, "replay_buffer", None) is None:
        return
    arrays, pickled = run_dir / REPLAY_BUFFER_FILE, run_dir / LEGACY_REPLAY_BUFFER_FILE
    if arrays.is_file():
        load_replay_buffer(agent.replay_buffer, arrays)
    elif pickled.is_file():
        if not trust_pickles:
            raise CheckpointError(f"{pickled}: a pickled replay buffer, {PICKLE_RISK}")
        agent.load_replay_buffer(pickled, trust_pickles=True)


def save_run_replay_buffer(agent, run_dir: Path) -> None:
    """Write ``agent``'s replay buffer (if it has one) to ``run_dir/replay_buffer.npz``."""
    if getattr(agent, "replay_buffer", None) is not None:
        save_replay_buffer(agent.replay_buffer, run_dir / REPLAY_BUFFER_FILE)
