"""Gymnasium registration of DriveEnv environments (entry point group ``gymnasium.envs``).

Gymnasium calls ``register_envs`` when it is imported, so ``gymnasium.make("driveenv/Drive-v0")``
works in any process, including vector-env subprocesses, without importing ``simulator`` first.
"""

from __future__ import annotations


def register_envs() -> None:
    """Register ``driveenv/Drive-v0`` (no-op until the environment module exists)."""
