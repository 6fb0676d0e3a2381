"""Metres per dataset unit, from what the user measured or the images recorded.

``--scale camera-height=H``: the cameras' median height over the ground found by ``align`` is H
metres. ``--scale distance=I,J,D``: frames I and J are D metres apart. ``--scale gps``: the
cameras' horizontal path fitted to the GPS positions in the images' EXIF (``gps``), then checked
stretch by stretch (``scale_check``): the fix for a wrong-sized world whose photos carry GPS.
Without any, the dataset's units are kept (scale 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scene_builder.errors import DatasetError


def metres_per_unit(
    config, dataset, up: np.ndarray, heights: np.ndarray
) -> tuple[float, dict[str, Any]]:
    """The scale asked for by ``config`` (an ``AlignConfig``) and what the report records of it.

    ``heights`` are the cameras' heights over the ground, in the dataset's units.
    """
    centres = dataset.poses[:, :3, 3]
    root: Path = dataset.root
    if config.gps:
        from scene_builder.gps import gps_scale
        from scene_builder.scale_check import check_gps_stretches

        fit = gps_scale(dataset, centres, up)
        stretches = check_gps_stretches(dataset, fit, up)
        return fit.scale, {"gps": {**fit.to_json(), "stretch_scales": stretches}}
    if config.camera_height is not None:
        median = float(np.median(heights))
        if median <= 0:
            raise DatasetError(f"{root}: the cameras are not above the ground found")
        return config.camera_height / median, {}
    if config.distance is not None:
        i, j, metres = config.distance
        if not (0 <= i < len(centres) and 0 <= j < len(centres)) or i == j:
            raise DatasetError(
                f"--scale distance={i},{j},{metres}: frames must be two different indices "
                f"in 0..{len(centres) - 1}"
            )
        apart = float(np.linalg.norm(centres[i] - centres[j]))
        if apart < 1e-9:
            raise DatasetError(f"--scale distance: frames {i} and {j} are at the same place")
        return metres / apart, {}
    return 1.0, {}
