"""What geometry extraction passes between its steps and caches: Region, DepthView, Geometry."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from common.atomic import atomic_path
from scene_builder.drivable import DrivableMap
from scene_builder.errors import MeshError

GEOMETRY_FILE = "geometry.json"

Progress = Callable[[int, int, str], None]  # (done, total, what) for a progress display


@dataclass
class Region:
    """The arena: a disc of ``radius`` around ``centre`` (x, y) on the ground, up to ``top``."""

    centre: np.ndarray
    radius: float
    bottom: float
    top: float

    def to_json(self) -> dict[str, Any]:
        return {
            "centre": [float(c) for c in self.centre],
            "radius": float(self.radius),
            "bottom": float(self.bottom),
            "top": float(self.top),
        }


@dataclass
class Geometry:
    """What ``extract_geometry`` produces; saved to and loaded from a folder by the build cache."""

    collision: trimesh.Trimesh
    visual: trimesh.Trimesh
    drivable: DrivableMap
    region: Region
    stats: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | Path) -> Path:
        """Write collision.obj, visual.ply, drivable.npz and geometry.json atomically."""
        folder = Path(folder)
        with atomic_path(folder) as tmp:
            tmp.mkdir(parents=True)
            self.collision.export(tmp / "collision.obj")
            self.visual.export(tmp / "visual.ply")
            np.savez_compressed(
                tmp / "drivable.npz",
                grid=self.drivable.grid,
                origin_xy=self.drivable.origin_xy,
                resolution=self.drivable.resolution,
            )
            meta = {"region": self.region.to_json(), "stats": self.stats}
            (tmp / GEOMETRY_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Geometry:
        folder = Path(folder)
        try:
            meta = json.loads((folder / GEOMETRY_FILE).read_text())
            data = np.load(folder / "drivable.npz")
            collision = trimesh.load(folder / "collision.obj", force="mesh", process=False)
            visual = trimesh.load(folder / "visual.ply", force="mesh", process=False)
        except (OSError, ValueError, KeyError) as error:
            raise MeshError(f"{folder}: unreadable geometry ({error})") from None
        region = meta["region"]
        return cls(
            collision=collision,
            visual=visual,
            drivable=DrivableMap(data["grid"], data["origin_xy"], float(data["resolution"])),
            region=Region(
                np.array(region["centre"]), region["radius"], region["bottom"], region["top"]
            ),
            stats=meta.get("stats", {}),
        )


@dataclass
class DepthView:
    """One rendered view: pose (OpenGL c2w), fx fy cx cy, and the field's rgb/depth/opacity."""

    camera_to_world: np.ndarray
    intrinsics: np.ndarray
    rgb: np.ndarray  # (H, W, 3)
    depth: np.ndarray  # (H, W) z-depth, 0 where unknown
    # (H, W) opacity of the whole ray and of a thin band around ``depth``; None: not rendered
    # (depth from a mesh, all of it trusted)
    opacity: np.ndarray | None = None
    surface_opacity: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.depth.shape[1], self.depth.shape[0]
