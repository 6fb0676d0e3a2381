"""Exceptions raised by ``simulator``; all are ``DriveEnvError`` so the CLI prints them on one line."""

from common.errors import DriveEnvError


class SimulatorError(DriveEnvError):
    """Base of simulator errors."""


class ConfigError(SimulatorError):
    """An environment configuration value is invalid."""


class ActionError(SimulatorError):
    """An action is NaN, infinite or of the wrong shape."""
