"""Scene bounds shared by the field backends and the trainer: where along a ray a field samples.

Pixel rays themselves come from ``scene_builder.camera`` (re-exported here for the trainer).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from scene_builder.camera import camera_rays, distort, pixel_grid, undistort
from scene_builder.errors import FieldError

__all__ = [
    "SceneBounds",
    "camera_rays",
    "distort",
    "estimate_bounds",
    "pixel_grid",
    "undistort",
]


@dataclass(frozen=True)
class SceneBounds:
    """Where the field lives: world -> normalised coordinates -> grid coordinates in [-1, 1].

    ``normalised = (world - center) / scale``. Bounded mode: the grid is the box
    ``|normalised| <= 1`` (rays are clipped to it; what lies beyond is the learned background).
    Unbounded mode: the cube ``|normalised| <= 1`` keeps full resolution and everything beyond
    is contracted into ``1 < |.| < 2`` (mip-NeRF 360's contraction with the L-inf norm, as in
    nerfacto), then halved into the grid; rays run to ``far``.
    """

    center: tuple[float, float, float]
    scale: float
    bounded: bool
    near: float  # world units: nothing closer than this to a camera is sampled
    far: float  # world units: the farthest sample (unbounded mode)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> SceneBounds:
        return cls(
            center=tuple(float(c) for c in data["center"]),
            scale=float(data["scale"]),
            bounded=bool(data["bounded"]),
            near=float(data["near"]),
            far=float(data["far"]),
        )

    def normalise(self, points: torch.Tensor) -> torch.Tensor:
        center = torch.tensor(self.center, dtype=points.dtype)
        return (points - center) / self.scale

    def grid_coordinates(self, normalised: torch.Tensor) -> torch.Tensor:
        """Normalised points -> grid coordinates in [-1, 1] (contracted when unbounded)."""
        if self.bounded:
            return normalised.clamp(-1, 1)
        # x -> x / 2 inside the unit cube, (2 - 1/n) x / (2 n) beyond (n = |x|_inf): one factor
        # per point, computed on (..., 1), so the (..., 3) tensor is touched only twice.
        norm = normalised.abs().amax(dim=-1, keepdim=True).clamp_min(1.0)
        return normalised * ((1 - 0.5 / norm) / norm)

    def ray_interval(
        self, origins: torch.Tensor, directions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-ray [t_near, t_far] in the rays' own t (world units / |direction|)."""
        length = directions.norm(dim=-1)
        t_near = self.near / length
        if not self.bounded:
            return t_near, torch.full_like(t_near, self.far) / length
        o = self.normalise(origins)
        d = directions / self.scale
        safe = torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
        t0 = (-1 - o) / safe
        t1 = (1 - o) / safe
        enter = torch.minimum(t0, t1).amax(dim=-1)
        leave = torch.maximum(t0, t1).amin(dim=-1)
        t_near = torch.maximum(t_near, enter)
        leave = torch.maximum(leave, t_near + 1e-4)
        return t_near, leave


def estimate_bounds(poses: np.ndarray, mode: str = "auto", margin: float = 1.0) -> SceneBounds:
    """Scene bounds from camera poses alone (works in any frame: SfM units or metres).

    Inward-facing captures (an orbit around an object) are centred on the point closest to all
    optical axes, with the full-resolution cube reaching half-way to the cameras (``margin``
    scales it); ``bounded`` mode instead uses a box that contains the cameras, so the room
    around the object lives on the box's walls. Forward-moving captures (a street) are centred
    on the cameras with the cube containing them, and are always contracted.
    """
    if mode not in ("auto", "bounded", "unbounded"):
        raise FieldError(f"scene mode {mode!r}: expected auto, bounded or unbounded")
    positions = poses[:, :3, 3]
    forward = -poses[:, :3, 2]
    forward = forward / np.linalg.norm(forward, axis=1, keepdims=True)
    # Least-squares point nearest to every optical axis.
    projector = np.eye(3)[None] - forward[:, :, None] * forward[:, None, :]
    focus = np.linalg.lstsq(
        projector.sum(0), np.einsum("nij,nj->i", projector, positions), rcond=None
    )[0]
    to_focus = focus - positions
    distance = np.linalg.norm(to_focus, axis=1)
    inward = float(np.mean(np.sum(forward * to_focus, axis=1) / np.maximum(distance, 1e-9)))
    spread = float(np.max(np.abs(positions - positions.mean(0)))) or 1.0
    orbit = inward > 0.8 and float(np.median(distance)) < 4 * spread
    if mode == "bounded":
        radius = float(np.max(np.abs(positions - focus))) if orbit else spread
        center = focus if orbit else positions.mean(0)
        scale = 1.2 * radius * margin
        return SceneBounds(tuple(center.tolist()), scale, True, 0.02 * scale, 2 * scale)
    if orbit:
        scale = 0.5 * float(np.median(distance)) * margin
        center = focus
    else:
        center = positions.mean(0)
        scale = 1.1 * spread * margin
    return SceneBounds(tuple(center.tolist()), scale, False, 0.02 * scale, 1000 * scale)
