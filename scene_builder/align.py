"""Align: move a posed dataset into the world frame (z up, ground z = 0, metres).

Up comes from the ground plane or from the cameras. The ground is found by a seeded RANSAC plane
fit on the sparse SfM points, keeping the plane with the most inliers among the candidates that
(a) are within 45 degrees of the cameras' mean up vector and (b) have nearly all cameras on their
up side; a wall or the side of an object fails (a) or (b). For a capture at table height around a
figurine this is the table top, as it should be. Without usable points the cameras' mean up
vector is used, and the ground height is the densest layer of points below the cameras.

The yaw is fixed by the first camera: its viewing direction, flattened onto the ground, becomes +x
(so a drive or walk starts heading along +x). The origin is the cameras' centroid dropped onto the
ground. The scale comes from the user's measurement: the cameras' median height above the ground,
or the distance between two frames' camera centres; without one the SfM units are kept and the
dataset says so (``alignment.metric = false``).

The similarity is composed into ``world_from_source`` (so aligning twice, or after an import that
already had one, still maps the original SfM frame), and the sparse points stay in that source
frame on disk. NumPy does the plane fit (a few hundred vectorised hypotheses; no library offers a
constrained, seeded plane RANSAC) and the Umeyama similarity used to score poses against a
reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scene_builder.datasets import (
    apply_similarity,
)
from scene_builder.errors import DatasetError

UP_METHODS = ("auto", "cameras", "ground")
# A ground plane needs this many sparse points to be trusted.
MIN_GROUND_POINTS = 50
# Share of cameras that must be on the up side of a ground candidate.
MIN_CAMERAS_ABOVE = 0.95


@dataclass(frozen=True)
class AlignConfig:
    """How up, origin and scale are found."""

    up: str = "auto"
    camera_height: float | None = None  # metres of the cameras above the ground
    distance: tuple[int, int, float] | None = None  # frames I and J are D metres apart
    ransac_iterations: int = 1000
    inlier_threshold: float = 0.01  # plane distance, as a share of the points' robust extent
    max_tilt_deg: float = 45.0  # largest angle between the ground normal and the cameras' up
    seed: int = 0

    @classmethod
    def from_cli(cls, up: str, scale: str | None, seed: int = 0) -> AlignConfig:
        """Parse ``--scale camera-height=H`` or ``--scale distance=I,J,D``."""
        camera_height = distance = None
        if scale:
            key, _, value = scale.partition("=")
            try:
                if key == "camera-height":
                    camera_height = float(value)
                elif key == "distance":
                    i, j, d = value.split(",")
                    distance = (int(i), int(j), float(d))
                else:
                    raise ValueError
            except ValueError:
                raise DatasetError(
                    f"--scale {scale}: expected camera-height=H or distance=I,J,D "
                    "(frame indices I, J; metres H, D)"
                ) from None
        config = cls(up=up, camera_height=camera_height, distance=distance, seed=seed)
        config.validate()
        return config

    def validate(self) -> None:
        if self.up not in UP_METHODS:
            raise DatasetError(f"--up {self.up}: must be one of {', '.join(UP_METHODS)}")
        if self.camera_height is not None and self.distance is not None:
            raise DatasetError("--scale: give camera-height or distance, not both")
        if self.camera_height is not None and not self.camera_height > 0:
            raise DatasetError(f"--scale camera-height={self.camera_height}: must be positive")
        if self.distance is not None and not self.distance[2] > 0:
            raise DatasetError(f"--scale distance: {self.distance[2]} metres must be positive")


@dataclass
class AlignReport:
    root: Path
    up_method: str  # "ground" or "cameras"
    ground_inliers: int
    scale: float  # metres per source unit (1.0 when no measurement was given)
    metric: bool
    camera_height: float  # cameras' median height above the ground, in world units
    tilt_deg: float  # angle between the ground normal and the cameras' mean up
    extras: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        units = "m" if self.metric else "SfM units (no --scale given)"
        ground = (
            f"ground plane from {self.ground_inliers} sparse points"
            if self.up_method == "ground"
            else "up from the cameras"
        )
        return (
            f"{self.root}: aligned, {ground} (tilt {self.tilt_deg:.1f} deg from camera up); "
            f"cameras {self.camera_height:.3f} {units} above the ground; scale {self.scale:.5g}"
        )


# --- similarity tools -------------------------------------------------------------------------


def umeyama(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 4x4 similarity ``s*R | t`` that best maps ``source`` points (N,3) onto ``target``.

    Least squares in the sense of Umeyama (1991), with the reflection case handled.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    mean_s, mean_t = source.mean(0), target.mean(0)
    centred_s, centred_t = source - mean_s, target - mean_t
    covariance = centred_t.T @ centred_s / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    rotation = u @ sign @ vt
    variance = (centred_s**2).sum() / len(source)
    scale = float(np.trace(np.diag(singular) @ sign) / variance)
    similarity = np.eye(4)
    similarity[:3, :3] = scale * rotation
    similarity[:3, 3] = mean_t - scale * rotation @ mean_s
    return similarity


@dataclass(frozen=True)
class PoseComparison:
    """Per-frame errors of estimated poses against reference poses, after a similarity."""

    rotation_deg: np.ndarray
    position: np.ndarray  # in reference units
    extent: float  # diagonal of the reference camera centres' bounding box
    similarity: np.ndarray  # reference_from_estimated

    @property
    def median_rotation_deg(self) -> float:
        return float(np.median(self.rotation_deg))

    @property
    def median_position_share(self) -> float:
        """Median camera-position error as a share of the reference trajectory's extent."""
        return float(np.median(self.position) / self.extent)


def compare_poses(estimated: np.ndarray, reference: np.ndarray) -> PoseComparison:
    """Align ``estimated`` camera centres to ``reference`` (Umeyama) and measure the errors."""
    estimated, reference = np.asarray(estimated), np.asarray(reference)
    similarity = umeyama(estimated[:, :3, 3], reference[:, :3, 3])
    moved = apply_similarity(similarity, estimated)
    relative = np.einsum("nji,njk->nik", reference[:, :3, :3], moved[:, :3, :3])
    cosine = np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    centres = reference[:, :3, 3]
    return PoseComparison(
        rotation_deg=np.degrees(np.arccos(cosine)),
        position=np.linalg.norm(moved[:, :3, 3] - centres, axis=1),
        extent=float(np.linalg.norm(centres.max(0) - centres.min(0))),
        similarity=similarity,
    )
