"""Exceptions raised by ``eval``; all are ``DriveEnvError`` so the CLI prints them on one line."""

from common.errors import DriveEnvError


class EvalError(DriveEnvError):
    """Base of evaluation errors."""


class TrialLogError(EvalError):
    """A real-trial CSV is malformed (the message lists every problem with its line)."""


class CampaignError(EvalError):
    """An evaluation directory is missing, from another scene, or does not match the trial log."""
