"""Sub-commands of ``driveenv`` from simulator: drive, rollout."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
