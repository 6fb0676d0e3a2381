"""Stable-Baselines3 adapter: a ``VecEnv`` over ``DriveVectorEnv`` that keeps batched rendering.

SB3's own ``DummyVecEnv`` would step (and render) each sub-environment separately; this adapter
drives a ``DriveVectorEnv`` in gymnasium's ``SAME_STEP`` autoreset mode, which is SB3's
convention: a finished episode's last observation goes into ``info["terminal_observation"]``
and ``info["TimeLimit.truncated"]`` marks time-outs, so value bootstrapping is correct.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from simulator.config import EnvConfig
from simulator.vector import DriveVectorEnv


class DriveSB3VecEnv(VecEnv):
    """SB3 ``VecEnv`` view of a ``DriveVectorEnv`` (which must use ``SAME_STEP`` autoreset)."""

    def __init__(self, vec: DriveVectorEnv) -> None:
        if vec.autoreset_mode != AutoresetMode.SAME_STEP:
            vec.autoreset_mode = AutoresetMode.SAME_STEP
            vec.metadata["autoreset_mode"] = AutoresetMode.SAME_STEP
        self.vec = vec
        self._actions: np.ndarray | None = None
        super().__init__(vec.num_envs, vec.single_observation_space, vec.single_action_space)

    def reset(self):
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        options = self._options[0] if self._options and self._options[0] else None
        observations, infos = self.vec.reset(seed=seeds, options=options)
        self.reset_infos = _split_infos(infos, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, -1)

    def step_wait(self):
        observations, rewards, terminations, truncations, infos = self.vec.step(self._actions)
        dones = terminations | truncations
        final_obs = infos.pop("final_obs", None)
        final_info = infos.pop("final_info", None)
        infos.pop("_final_obs", None)
        infos.pop("_final_info", None)
        per_env = _split_infos(infos, self.num_envs)
        for i in np.flatnonzero(dones):
            if final_info is not None and final_info[i] is not None:
                per_env[i] = dict(final_info[i])
            per_env[i]["terminal_observation"] = final_obs[i]
            per_env[i]["TimeLimit.truncated"] = bool(truncations[i] and not terminations[i])
        return observations, rewards.astype(np.float32), dones, per_env

    def close(self) -> None:
        self.vec.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.vec.envs[i], attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        for i in self._get_indices(indices):
            setattr(self.vec.envs[i], attr_name, value)

    def env_method(
        self, method_name: str, *method_args, indices=None, **method_kwargs
    ) -> list[Any]:
        return [
            getattr(self.vec.envs[i], method_name)(*method_args, **method_kwargs)
            for i in self._get_indices(indices)
        ]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self):
        return [env.render() for env in self.vec.envs]


def _split_infos(infos: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """gymnasium's batched info dict -> SB3's list of per-env dicts (mask keys dropped)."""
    per_env: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, values in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}", np.ones(num_envs, dtype=bool))
        for i in range(num_envs):
            if mask[i]:
                per_env[i][key] = values[i]
    return per_env


def to_sb3_vec(vec: DriveVectorEnv) -> DriveSB3VecEnv:
    """Adapt a ``DriveVectorEnv`` to Stable-Baselines3's ``VecEnv``."""
    return DriveSB3VecEnv(vec)


def make_sb3_vec(config: EnvConfig, num_envs: int, scene=None) -> DriveSB3VecEnv:
    """A Stable-Baselines3 ``VecEnv`` of ``num_envs`` DriveEnvs with batched rendering
    (``scene``: the already loaded ``SceneBundle`` of ``config.scene``, if any)."""
    vec = DriveVectorEnv(config, num_envs, autoreset_mode=AutoresetMode.SAME_STEP, scene=scene)
    return DriveSB3VecEnv(vec)
