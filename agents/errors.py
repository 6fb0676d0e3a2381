"""Exceptions raised by ``agents``; all are ``DriveEnvError`` so the CLI prints them on one line."""

from common.errors import DriveEnvError


class AgentError(DriveEnvError):
    """Base of agent errors."""


class CheckpointError(AgentError):
    """A saved agent is missing, corrupted or of another algorithm."""


class DemoError(AgentError):
    """A demonstration file is missing or malformed."""
