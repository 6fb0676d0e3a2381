"""Similarities between camera sets: Umeyama's least-squares fit, and per-frame pose errors
against a reference model after it (how recovered poses are scored)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scene_builder.datasets import apply_similarity


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
