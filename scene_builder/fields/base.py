"""The one render API every field backend offers.

A backend implements ``_render_rays`` for world-space rays; this class turns a batch of cameras
into rays (``scene_builder.camera``), resolves the appearance (a preset name or a code; a preset
the field has no code for follows ``scene_builder.lighting``'s rule), validates input with
one-line ``FieldError`` messages and renders in chunks without gradients. All N cameras of a call are
flattened into one ray batch, so 16 cameras of 64x64 cost the same per ray as one 256x256 image.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scene_builder.camera import camera_rays, pixel_grid
from scene_builder.errors import FieldError
from scene_builder.lighting import (
    CAPTURE,
    PRESET_NAMES,
    PRESETS,
    LightingPreset,
    presets_from_json,
)

FIELD_FILE = "field.json"
FIELD_FORMAT_VERSION = 1
__all__ = ["FIELD_FILE", "FIELD_FORMAT_VERSION", "PRESET_NAMES", "RadianceField", "RenderOutput"]


@dataclass
class RenderOutput:
    """Rendered images of N cameras: rgb (N,H,W,3) in [0,1], z-depth (N,H,W) metres, opacity (N,H,W)."""

    rgb: torch.Tensor
    depth: torch.Tensor
    accumulation: torch.Tensor


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(
            np.asarray(value, dtype=np.float32) if not torch.is_tensor(value) else value
        )
    except (TypeError, ValueError) as error:
        raise FieldError(f"{name}: not a numeric array ({error})") from None
    tensor = tensor.to(torch.float32)
    if not torch.isfinite(tensor).all():
        raise FieldError(f"{name}: contains NaN or infinite values")
    return tensor


class RadianceField(ABC):
    """A trained field that renders cameras; see ``render``."""

    backend_name: str = ""
    chunk_rays: int = 32768

    def __init__(self, root: Path, meta: dict[str, Any]):
        self.root = Path(root)
        self.meta = meta
        self.lighting_presets: dict[str, torch.Tensor] = {}

    @property
    @abstractmethod
    def appearance_dim(self) -> int:
        """Length D of an appearance code."""

    @abstractmethod
    def _render_rays(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        codes: torch.Tensor,
        surface_t: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Render world rays (R,3) with z-scaled directions; return rgb (R,3), depth (R,), acc (R,)."""

    @property
    def preset_photometric(self) -> dict[str, LightingPreset]:
        """The presets this field was trained with (field.json), else the standard table."""
        return presets_from_json(self.meta.get("preset_photometric") or {}) or dict(PRESETS)

    def resolve_appearance(
        self, appearance: str | torch.Tensor | np.ndarray, count: int
    ) -> tuple[torch.Tensor, LightingPreset | None]:
        """A preset name or a code (D,) / (N, D) -> codes (N, D) and the change to apply to the
        rendered image: a preset is the capture code plus its change (``scene_builder.lighting``)."""
        if isinstance(appearance, str):
            change = self.preset_photometric.get(appearance)
            if change is None or CAPTURE not in self.lighting_presets:
                known = ", ".join(sorted(self.preset_photometric))
                raise FieldError(f"unknown lighting preset {appearance!r} (known: {known})")
            return self.lighting_presets[CAPTURE].reshape(1, -1).expand(count, -1), change
        codes = _as_tensor(appearance, "appearance code")
        if codes.ndim == 1:
            codes = codes.reshape(1, -1).expand(count, -1)
        if codes.shape != (count, self.appearance_dim):
            raise FieldError(
                f"appearance code has shape {tuple(codes.shape)}; expected ({self.appearance_dim},) "
                f"or ({count}, {self.appearance_dim})"
            )
        return codes, None

    def render(
        self,
        camera_to_world,
        intrinsics,
        width: int,
        height: int,
        appearance: str | torch.Tensor | np.ndarray = "capture",
        surface_depth=None,
    ) -> RenderOutput:
        """Render N cameras (all ``width`` x ``height``) in one call.

        ``camera_to_world`` (N,4,4) or (4,4), OpenGL axes, world frame; ``intrinsics`` (N,4) or
        (4,) as fx, fy, cx, cy in pixels of this size (pixel centres at +0.5); ``surface_depth``
        (N,H,W) z-depth of the surface found by mesh ray casting (non-finite or <= 0 where the
        ray hits nothing: those pixels march freely).
        """
        poses = _as_tensor(camera_to_world, "camera_to_world")
        if poses.shape == (4, 4):
            poses = poses[None]
        if poses.ndim != 3 or poses.shape[1:] != (4, 4):
            raise FieldError(f"camera_to_world has shape {tuple(poses.shape)}; expected (N, 4, 4)")
        count = poses.shape[0]
        if (
            isinstance(width, bool)
            or isinstance(height, bool)
            or int(width) != width
            or int(height) != height
        ):
            raise FieldError(f"image size {width}x{height}: width and height must be integers")
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise FieldError(f"image size {width}x{height}: width and height must be positive")
        intr = _as_tensor(intrinsics, "intrinsics")
        if intr.shape == (4,):
            intr = intr[None].expand(count, 4)
        if intr.shape != (count, 4):
            raise FieldError(
                f"intrinsics has shape {tuple(intr.shape)}; expected (4,) or ({count}, 4)"
            )
        if (intr[:, :2] <= 0).any():
            raise FieldError("intrinsics: focal lengths fx, fy must be positive")
        codes, change = self.resolve_appearance(appearance, count)
        pixels = height * width
        surface = None
        if surface_depth is not None:
            surface = (
                torch.as_tensor(np.asarray(surface_depth, dtype=np.float32))
                if not torch.is_tensor(surface_depth)
                else surface_depth.to(torch.float32)
            )
            if surface.shape != (count, height, width):
                raise FieldError(
                    f"surface_depth has shape {tuple(surface.shape)}; expected ({count}, {height}, {width})"
                )
            surface = surface.reshape(-1)
        u, v = pixel_grid(width, height)
        rgb = torch.empty(count * pixels, 3)
        depth = torch.empty(count * pixels)
        accumulation = torch.empty(count * pixels)
        camera_index = torch.arange(count).repeat_interleave(pixels)
        u_all, v_all = u.repeat(count), v.repeat(count)
        with torch.no_grad():
            for start in range(0, count * pixels, self.chunk_rays):
                part = slice(start, min(start + self.chunk_rays, count * pixels))
                index = camera_index[part]
                origins, directions = camera_rays(
                    poses[index], intr[index], u_all[part], v_all[part]
                )
                out = self._render_rays(
                    origins, directions, codes[index], None if surface is None else surface[part]
                )
                rgb[part], depth[part], accumulation[part] = out
        rgb = rgb.reshape(count, height, width, 3).clamp(0, 1)
        return RenderOutput(
            rgb=rgb if change is None else change.apply(rgb),
            depth=depth.reshape(count, height, width),
            accumulation=accumulation.reshape(count, height, width).clamp(0, 1),
        )


def read_field_meta(field_dir: str | Path) -> dict[str, Any]:
    """Read and check ``FIELD_DIR/field.json``; FieldError naming the file on any problem."""
    path = Path(field_dir) / FIELD_FILE
    if not path.is_file():
        raise FieldError(
            f"{path}: no such file (run 'driveenv train-field' or 'driveenv import-field')"
        )
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FieldError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(meta, dict) or "backend" not in meta:
        raise FieldError(f"{path}: missing 'backend'")
    return meta
