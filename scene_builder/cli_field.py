"""Sub-commands of ``driveenv`` from scene_builder: train-field, import-field."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
