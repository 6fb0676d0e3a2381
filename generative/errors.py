"""Exceptions raised by ``generative``; all are ``DriveEnvError`` so the CLI prints them on one line."""

from common.errors import DriveEnvError


class GenerativeError(DriveEnvError):
    """Base of generative-model errors."""
