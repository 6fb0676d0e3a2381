"""The Gymnasium simulator: PyBullet physics over a scene bundle, cameras rendered from the radiance field or the baked mesh.

Public API: ``EnvConfig``, ``make_env``, ``make_vec``, ``DriveEnv``,
``DriveVectorEnv``, ``make_multi`` and ``MultiDriveEnv`` (several robots, a PettingZoo
ParallelEnv); ``simulator.sb3.to_sb3_vec`` adapts a vector env to Stable-Baselines3.
Importing the package registers ``driveenv/Drive-v0`` with gymnasium; the classes load lazily so
that ``driveenv --help`` does not pay for PyBullet and open3d.
"""

from __future__ import annotations

import importlib

from simulator.registration import ENV_ID, register_envs

register_envs()

_LAZY = {
    "EnvConfig": "simulator.config",
    "DriveEnv": "simulator.env",
    "make_env": "simulator.env",
    "DriveVectorEnv": "simulator.vector",
    "make_vec": "simulator.vector",
    "MultiDriveEnv": "simulator.multi_env",
    "make_multi": "simulator.multi_env",
}
__all__ = ["ENV_ID", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
