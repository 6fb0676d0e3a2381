"""A vector env that steps each sub-environment's physics and renders all cameras in one call.

Camera rendering is the expensive part of a step; a renderer's cost per ray falls when it
draws many cameras at once (one ray-cast call, one field batch), so ``DriveVectorEnv`` keeps
N ``DriveEnv`` sub-environments that share one scene and one renderer, advances their physics
one by one (microseconds each), then renders all N cameras together; ``benchmarks/env_speed.py``
measures the speed-up.

It is a gymnasium ``VectorEnv`` with gymnasium's own autoreset conventions
(``metadata["autoreset_mode"]``: ``NEXT_STEP`` by default, as ``SyncVectorEnv``; ``SAME_STEP``
puts ``final_obs``/``final_info`` in the info, which ``simulator.sb3`` uses), so gymnasium's
vector wrappers work on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from scene_builder.bundle import SceneBundle
from simulator.config import EnvConfig
from simulator.env import DriveEnv, load_scene_for
from simulator.errors import ActionError, ConfigError


class DriveVectorEnv(VectorEnv):
    """``num_envs`` copies of ``DriveEnv`` with batched camera rendering.

    ``scene``: the loaded bundle of ``config.scene``, when the caller already holds it.
    """

    def __init__(
        self,
        config: EnvConfig,
        num_envs: int,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        scene: SceneBundle | None = None,
    ) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ConfigError(f"num_envs={num_envs!r}: must be a positive integer")
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        if self.autoreset_mode == AutoresetMode.DISABLED:
            raise ConfigError("autoreset_mode: DriveVectorEnv supports NEXT_STEP and SAME_STEP")
        self.config = config
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.metadata = {
            "autoreset_mode": self.autoreset_mode,
            "render_modes": ["rgb_array"],
            "render_fps": DriveEnv.metadata["render_fps"],
        }
        scene = scene if scene is not None else load_scene_for(config)
        self.envs: list[DriveEnv] = []
        try:
            first = DriveEnv(config, render_mode=render_mode, scene=scene)
            self.envs.append(first)
            for _ in range(num_envs - 1):
                self.envs.append(
                    DriveEnv(
                        config,
                        render_mode=render_mode,
                        scene=scene,
                        shared_renderer=first.renderer,
                    )
                )
        except BaseException:
            self.close()
            raise
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._needs_reset = np.zeros(num_envs, dtype=bool)
        self._seeded = False

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        if seed is None and not self._seeded:
            seed = self.config.seed
        if seed is None or isinstance(seed, int):
            seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ConfigError(f"reset: {len(seeds)} seeds given for {self.num_envs} envs")
        self._seeded = True
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        indices = range(self.num_envs) if mask is None else np.flatnonzero(np.asarray(mask))
        per_env: list[dict[str, Any] | None] = [None] * self.num_envs
        for i in indices:
            per_env[i] = self.envs[i].begin_episode(seeds[i], options)
            self._needs_reset[i] = False
        self._observations = self._observe(list(indices), getattr(self, "_observations", None))
        return _copy(self._observations), batch_infos(per_env)

    def step(self, actions):
        actions = np.asarray(actions)
        if actions.shape != self.action_space.shape:
            raise ActionError(
                f"actions have shape {actions.shape}; expected {self.action_space.shape}"
            )
        bad = ~np.isfinite(actions.astype(np.float64)).all(axis=1)
        if bad.any():  # checked for all envs before any of them moves
            raise ActionError(
                f"actions of env(s) {np.flatnonzero(bad).tolist()} contain NaN or infinity"
            )
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        per_env: list[dict[str, Any] | None] = [None] * self.num_envs
        for i, env in enumerate(self.envs):
            if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._needs_reset[i]:
                per_env[i] = env.begin_episode()
            else:
                rewards[i], terminations[i], truncations[i], per_env[i] = env.advance(actions[i])
        done = terminations | truncations
        observations = self._observe(list(range(self.num_envs)))
        extra: dict[str, Any] = {}
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            finished = np.flatnonzero(done)
            final_obs = np.full(self.num_envs, None, dtype=object)
            final_info = np.full(self.num_envs, None, dtype=object)
            for i in finished:
                final_obs[i] = {key: value[i].copy() for key, value in observations.items()}
                final_info[i] = per_env[i]
                per_env[i] = self.envs[i].begin_episode()
            extra = {"final_obs": final_obs, "final_info": final_info}
            extra["_final_obs"], extra["_final_info"] = done.copy(), done.copy()
            observations = self._observe(list(finished), observations)
        self._needs_reset = done
        self._observations = observations
        infos = {**batch_infos(per_env), **extra}
        return _copy(observations), rewards, terminations, truncations, infos

    def _observe(self, indices: list[int], into: dict[str, np.ndarray] | None = None):
        """Observations of ``indices`` (one batched render) written into the batch ``into``."""
        if into is None:
            into = {
                key: np.zeros(space.shape, dtype=space.dtype)
                for key, space in self.observation_space.spaces.items()
            }
        if not indices:
            return into
        envs = [self.envs[i] for i in indices]
        images = self.envs[0].render_cameras(envs)
        for i, env, frame in zip(indices, envs, images, strict=True):
            for key, value in env.observe(frame).items():
                into[key][i] = value
        return into

    def render(self):
        return tuple(env.render() for env in self.envs)

    def call(self, name: str, *args, **kwargs) -> tuple[Any, ...]:
        results = []
        for env in self.envs:
            attribute = getattr(env, name)
            results.append(attribute(*args, **kwargs) if callable(attribute) else attribute)
        return tuple(results)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return tuple(getattr(env, name) for env in self.envs)

    def set_attr(self, name: str, values: Any) -> None:
        if not isinstance(values, list | tuple):
            values = [values] * self.num_envs
        for env, value in zip(self.envs, values, strict=True):
            setattr(env, name, value)

    def close_extras(self, **kwargs: Any) -> None:
        for env in reversed(self.envs):  # the first owns the shared renderer
            env.close()


def batch_infos(per_env: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Per-env info dicts -> gymnasium's batched form: ``info[key][i]`` and a mask ``_key``.

    Every ``DriveEnv`` info has the same keys, so this is one array per key (strings become
    object arrays, as in gymnasium's own vector envs); ``None`` marks an env with no info.
    """
    present = np.array([info is not None for info in per_env])
    sample = next((info for info in per_env if info is not None), None)
    if sample is None:
        return {}
    batched: dict[str, Any] = {}
    for key, value in sample.items():
        values = [info[key] if info is not None else None for info in per_env]
        if isinstance(value, np.ndarray):
            filler = np.zeros_like(value)
            batched[key] = np.stack([filler if v is None else v for v in values])
        elif isinstance(value, bool | int | float | np.number):
            dtype = type(value) if not isinstance(value, np.number) else value.dtype
            batched[key] = np.array([0 if v is None else v for v in values], dtype=dtype)
        else:
            batched[key] = np.array(values, dtype=object)
        batched[f"_{key}"] = present.copy()
    return batched


def _copy(observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: value.copy() for key, value in observations.items()}


def make_vec(
    config: EnvConfig,
    num_envs: int,
    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    render_mode: str | None = None,
    scene: SceneBundle | None = None,
) -> DriveVectorEnv:
    """A ``DriveVectorEnv`` of ``num_envs`` sub-environments rendering in one batch.

    ``scene``: the already loaded bundle of ``config.scene`` (then it is not read again).
    """
    return DriveVectorEnv(
        config, num_envs, autoreset_mode=autoreset_mode, render_mode=render_mode, scene=scene
    )
