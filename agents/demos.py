"""Demonstrations: recorded trajectories, one ``.npz`` file per set, and the recorder.

File layout (``numpy.savez_compressed``, no pickles, so a file from anywhere loads safely):
trajectories are concatenated along time and cut by offsets.

- ``obs.<key>``: every observation key (all sensors), shape (sum(T_i + 1), ...)
- ``actions`` (sum T_i, A), ``rewards`` (sum T_i,), ``info.<name>`` (sum T_i, ...) for the
  numeric step infos (collision, off_road, distance_to_goal, route_completion, pose)
- ``obs_offsets`` / ``step_offsets`` (N + 1,): where trajectory i starts and ends
- ``success`` (N,) bool; ``metadata``: a JSON string (environment config, who recorded it)

``mirror_trajectory`` is the one augmentation of a demonstration: its left-right mirror image.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.errors import DemoError
from common.atomic import atomic_path
from simulator.sensors import STATE_FIELDS

FORMAT_VERSION = 1
STEP_INFO_KEYS = ("collision", "off_road", "distance_to_goal", "route_completion", "pose")


@dataclass
class Trajectory:
    """One episode: T actions between T + 1 observations."""

    observations: dict[str, np.ndarray]  # key -> (T + 1, ...)
    actions: np.ndarray  # (T, A)
    rewards: np.ndarray  # (T,)
    success: bool
    infos: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (T, ...)

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def next_observations(self) -> dict[str, np.ndarray]:
        return {key: value[1:] for key, value in self.observations.items()}

    @property
    def current_observations(self) -> dict[str, np.ndarray]:
        return {key: value[:-1] for key, value in self.observations.items()}


def save_demos(path: str | Path, trajectories: list[Trajectory], metadata: dict | None = None):
    """Write ``trajectories`` to ``path`` (.npz) atomically."""
    path = Path(path)
    if not trajectories:
        raise DemoError(f"{path}: no trajectories to save")
    keys = sorted(trajectories[0].observations)
    arrays: dict[str, np.ndarray] = {}
    for key in keys:
        arrays[f"obs.{key}"] = np.concatenate([t.observations[key] for t in trajectories])
    arrays["actions"] = np.concatenate([t.actions for t in trajectories]).astype(np.float32)
    arrays["rewards"] = np.concatenate([t.rewards for t in trajectories]).astype(np.float32)
    for name in sorted(set.intersection(*(set(t.infos) for t in trajectories))):
        arrays[f"info.{name}"] = np.concatenate([t.infos[name] for t in trajectories])
    lengths = np.array([len(t) for t in trajectories])
    arrays["step_offsets"] = np.concatenate([[0], np.cumsum(lengths)])
    arrays["obs_offsets"] = np.concatenate([[0], np.cumsum(lengths + 1)])
    arrays["success"] = np.array([t.success for t in trajectories], dtype=bool)
    meta = {"format_version": FORMAT_VERSION, **(metadata or {})}
    arrays["metadata"] = np.array(json.dumps(meta))
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def load_demos(path: str | Path) -> list[Trajectory]:
    """Read a demonstrations file written by ``save_demos``; ``DemoError`` if it is not one."""
    return load_demos_with_metadata(path)[0]


def load_demos_with_metadata(path: str | Path) -> tuple[list[Trajectory], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise DemoError(f"{path}: demonstrations file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DemoError(f"{path}: not a readable .npz demonstrations file ({error})") from None
    required = ("actions", "rewards", "step_offsets", "obs_offsets", "success", "metadata")
    missing = [name for name in required if name not in arrays]
    if missing:
        raise DemoError(f"{path}: not a demonstrations file (missing {', '.join(missing)})")
    try:
        metadata = json.loads(str(arrays["metadata"]))
    except json.JSONDecodeError:
        raise DemoError(f"{path}: metadata is not valid JSON") from None
    steps, obs_offsets = arrays["step_offsets"], arrays["obs_offsets"]
    n = len(arrays["success"])
    obs_keys = [name[4:] for name in arrays if name.startswith("obs.")]
    if not obs_keys:
        raise DemoError(f"{path}: no observations recorded")
    consistent = (
        len(steps) == n + 1
        and len(obs_offsets) == n + 1
        and steps[-1] == len(arrays["actions"]) == len(arrays["rewards"])
        and np.array_equal(np.diff(obs_offsets), np.diff(steps) + 1)
        and all(len(arrays[f"obs.{key}"]) == obs_offsets[-1] for key in obs_keys)
    )
    if not consistent:
        raise DemoError(f"{path}: trajectory offsets do not match the recorded arrays")
    info_names = [name[5:] for name in arrays if name.startswith("info.")]
    trajectories = []
    for i in range(n):
        s0, s1, o0, o1 = steps[i], steps[i + 1], obs_offsets[i], obs_offsets[i + 1]
        trajectories.append(
            Trajectory(
                observations={key: arrays[f"obs.{key}"][o0:o1] for key in obs_keys},
                actions=arrays["actions"][s0:s1],
                rewards=arrays["rewards"][s0:s1],
                success=bool(arrays["success"][i]),
                infos={name: arrays[f"info.{name}"][s0:s1] for name in info_names},
            )
        )
    return trajectories, metadata


def record_episode(env, policy, seed: int | None = None, options: dict | None = None) -> Trajectory:
    """Run one episode of ``policy`` (SB3-shaped ``predict``) in ``env`` and record it."""
    obs, info = env.reset(seed=seed, options=options)
    if hasattr(policy, "reset"):
        policy.reset()
    observations = {key: [np.asarray(value)] for key, value in _as_dict(obs).items()}
    actions, rewards, infos = [], [], {name: [] for name in STEP_INFO_KEYS}
    done = False
    while not done:
        action, _ = policy.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        for key, value in _as_dict(obs).items():
            observations[key].append(np.asarray(value))
        actions.append(np.asarray(action, dtype=np.float32).reshape(-1))
        rewards.append(float(reward))
        for name in STEP_INFO_KEYS:
            if name in info:
                infos[name].append(np.asarray(info[name]))
    return Trajectory(
        observations={key: np.stack(values) for key, values in observations.items()},
        actions=np.stack(actions),
        rewards=np.array(rewards, dtype=np.float32),
        success=bool(info.get("success", False)),
        infos={name: np.stack(values) for name, values in infos.items() if values},
    )


def record_demos(env, policy, episodes: int, seed: int, on_episode=None) -> list[Trajectory]:
    """Record ``episodes`` episodes with seeds ``seed``, ``seed + 1``, ...

    ``on_episode(trajectories_so_far)`` is called after each one (progress display).
    """
    trajectories: list[Trajectory] = []
    for episode in range(episodes):
        trajectories.append(record_episode(env, policy, seed=seed + episode))
        if on_episode is not None:
            on_episode(trajectories)
    return trajectories


def _as_dict(obs) -> dict[str, np.ndarray]:
    return obs if isinstance(obs, dict) else {"obs": obs}


# The state fields whose sign flips in the mirror image of an episode (the world reflected about
# a line through the goal): sideways offsets, turning and headings; distances, speed, progress
# and time are unchanged.
MIRRORED_STATE_FIELDS = (
    "target_y",
    "target_bearing_sin",
    "yaw_rate",
    "steer",
    "goal_frame_y",
    "heading_sin",
    "route_offset",
    "route_heading_sin",
    "route_turn",
)


def mirror_trajectory(trajectory: Trajectory, vehicle: str = "car") -> Trajectory:
    """The left-right mirror image of ``trajectory``: an equally valid expert episode.

    The vehicles' dynamics are left-right symmetric, so reflecting the world about a line through
    the goal turns every transition into one the simulator produces from the reflected pose
    (``MIRRORED_STATE_FIELDS`` change sign, the range scan's rays, which go counter-clockwise
    from straight ahead, swap sides: ray k becomes ray -k) under the reflected action (the car's
    steering changes sign, the diffdrive's wheels swap); camera images are flipped left-right.
    Scan and images then see the reflected scene, not this one: the mirrored episode is valid
    for the vehicle, not a path through this scene.
    """
    observations = {}
    for key, value in trajectory.observations.items():
        value = np.array(value, copy=True)
        if key == "state":
            if value.shape[1:] != (len(STATE_FIELDS),):
                raise DemoError(f"cannot mirror a {value.shape[1:]} state: not the simulator's")
            value[:, [STATE_FIELDS.index(name) for name in MIRRORED_STATE_FIELDS]] *= -1
        elif key == "scan":
            value = value[:, (-np.arange(value.shape[1])) % value.shape[1]]
        elif key in ("rgb", "depth"):  # (T, H, W[, C]) from a camera on the centre line
            value = value[:, :, ::-1].copy()
        else:
            raise DemoError(f"cannot mirror observation key {key!r}")
        observations[key] = value
    actions = np.array(trajectory.actions, copy=True)
    if vehicle == "car":
        actions[:, 0] *= -1
    elif vehicle == "diffdrive":
        actions = actions[:, ::-1].copy()
    else:
        raise DemoError(f"cannot mirror the actions of vehicle {vehicle!r}")
    return Trajectory(observations, actions, np.array(trajectory.rewards), trajectory.success)
