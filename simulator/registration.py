"""Gymnasium registration of DriveEnv environments.

``import simulator`` registers ``driveenv/Drive-v0``, so ``gymnasium.make("driveenv/Drive-v0",
scene=PATH, **config_fields)`` works after it; ``scene`` may also be a loaded ``SceneBundle``
(then it is not read again). ``max_episode_steps`` is the one field ``gymnasium.make`` keeps for
itself (its ``TimeLimit`` wrapper); set the env's own limit, which the state's elapsed-time
fraction uses, with ``config=EnvConfig(max_episode_steps=N)``. Gymnasium 1.x dropped the
``gymnasium.envs`` entry-point group that older releases loaded at import, so
in a fresh process with nothing imported use ``gymnasium.make("simulator:driveenv/Drive-v0",
...)``: gymnasium imports ``simulator`` first. Vector-env subprocesses receive the env spec
itself, whose entry point is an import path, so they need no registration.
"""

from __future__ import annotations

ENV_ID = "driveenv/Drive-v0"


def register_envs() -> None:
    """Register ``driveenv/Drive-v0`` once (repeated calls are no-ops)."""
    import gymnasium

    if ENV_ID in gymnasium.registry:
        return
    gymnasium.register(
        id=ENV_ID,
        entry_point="simulator.env:DriveEnv",
        # DriveEnv truncates at EnvConfig.max_episode_steps itself, so no TimeLimit wrapper.
        max_episode_steps=None,
    )
