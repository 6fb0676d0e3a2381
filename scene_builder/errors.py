"""Exceptions raised by ``scene_builder``; all are ``DriveEnvError`` so the CLI prints them on one line."""

from common.errors import DriveEnvError


class SceneBuilderError(DriveEnvError):
    """Base of scene-building errors."""


class CaptureError(SceneBuilderError):
    """A video or image folder cannot be turned into frames."""


class PoseError(SceneBuilderError):
    """Structure from motion failed or a pose source is unreadable."""


class DatasetError(SceneBuilderError):
    """A posed dataset (transforms.json and images) is missing or malformed."""


class FieldError(SceneBuilderError):
    """A radiance field cannot be trained, loaded or rendered as asked."""


class MeshError(SceneBuilderError):
    """Geometry extraction from a field failed."""


class BundleError(SceneBuilderError):
    """A scene bundle is missing a file, is corrupted, or has the wrong schema."""
