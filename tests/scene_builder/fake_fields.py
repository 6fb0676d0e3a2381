"""An analytic radiance field for geometry tests: exact depth of a few axis-aligned boxes.

It implements the render API (``scene_builder.fields.base.RadianceField.render``), so mesh
extraction is tested against known geometry in milliseconds; the seconds-trained real field
is exercised separately.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scene_builder.fields.base import RadianceField

# (min corner, max corner, rgb): a table top at z = 0 with a tall box on it, the floor below.
TABLE = ((-0.5, -0.4, -0.03), (0.5, 0.4, 0.0), (0.85, 0.85, 0.8))
BIRD = ((-0.04, -0.03, 0.0), (0.04, 0.03, 0.1), (0.2, 0.3, 0.8))
FLOOR = ((-3.0, -3.0, -0.72), (3.0, 3.0, -0.7), (0.4, 0.3, 0.2))
BOXES = (TABLE, BIRD, FLOOR)


class BoxesField(RadianceField):
    backend_name = "analytic"

    def __init__(self, boxes=BOXES):
        super().__init__(Path("."), {"backend": "analytic"})
        self.boxes = boxes
        self.lighting_presets = {"capture": torch.zeros(1), "dim": torch.ones(1)}

    @property
    def appearance_dim(self) -> int:
        return 1

    def _render_rays(self, origins, directions, codes, surface_t):
        best = torch.full((origins.shape[0],), float("inf"))
        rgb = torch.zeros(origins.shape[0], 3)
        for low, high, colour in self.boxes:
            low, high = torch.tensor(low), torch.tensor(high)
            safe = torch.where(
                directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions
            )
            t0, t1 = (low - origins) / safe, (high - origins) / safe
            enter = torch.minimum(t0, t1).amax(-1)
            leave = torch.maximum(t0, t1).amin(-1)
            hit = (enter <= leave) & (enter > 0) & (enter < best)
            best = torch.where(hit, enter, best)
            shade = torch.tensor(colour).expand_as(rgb)
            points = origins + directions * enter[:, None]
            checker = ((points[:, 0] * 20).floor() + (points[:, 1] * 20).floor()) % 2
            rgb = torch.where(hit[:, None], shade * (0.85 + 0.15 * checker[:, None]), rgb)
        found = torch.isfinite(best)
        rgb = rgb * (1 - 0.5 * codes[:, :1])
        return rgb, torch.where(found, best, torch.zeros_like(best)), found.float()


def orbit_cameras(count=24, radius=0.25, height=0.06, size=(64, 48), focal=50.0):
    """Poses (N,4,4) orbiting the origin at table height, looking at the box, and intrinsics."""
    from scene_builder.mesh import look_at

    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    poses = np.stack(
        [look_at([radius * np.cos(a), radius * np.sin(a), height], [0, 0, 0.02]) for a in angles]
    )
    intrinsics = np.tile([focal, focal, size[0] / 2, size[1] / 2], (count, 1))
    return poses, intrinsics
