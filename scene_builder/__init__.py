"""Scene building: from a captured video to a scene bundle (frames, poses, radiance field, meshes, maps).

``scene_builder.load_scene(path)`` is the entry point for everything downstream; it is imported
lazily so that ``import scene_builder`` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_scene"]


def __getattr__(name: str) -> Any:
    if name == "load_scene":
        from scene_builder.bundle import load_scene

        return load_scene
    raise AttributeError(f"module 'scene_builder' has no attribute {name!r}")
