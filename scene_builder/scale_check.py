"""Is a forward capture's path at one scale from end to end?

Structure from motion on a path seen only forward can place one stretch of it at another scale
than the next (COLMAP's global positioning put lund_street's first ten frames at a fifth of the
later scale in one run), and a single scale for the whole world then leaves part of it the wrong
size. Two measures of the local scale are compared stretch by stretch:

- the camera's height over the ground: a walker or a vehicle carries the camera at a nearly
  constant height, so the depth below each camera of the sparse points it sees steeply below
  its horizon (ground, kerb; ``geometry.ground.steep_floor``) is the same in every stretch of a
  consistent reconstruction. The points are given to the camera nearest to them, and consecutive
  cameras are grouped until a stretch holds ``MIN_STRETCH_POINTS`` of them; the median depth of
  each stretch is compared.
- with ``--scale gps``, the median GPS distance over camera distance within each stretch of at
  least ``STRETCH_SPAN_ACCURACIES`` receiver accuracies of GPS travel (at 40 m and 5 m fixes, a
  stretch's ratio is good to about a fifth).

The capture fails when two stretches differ by more than ``MAX_STRETCH_RATIO``: a camera's
height changes along a street by a kerb's height (a tenth of it), GPS noise moves a stretch by
about a fifth, and a stretch at a fifth of the scale differs by five. The stored lund model and
the fresh SfM runs of lund that fit their GPS well pass with room to spare, the runs that bent
the path do not (section ``scale_street`` of benchmarks/RESULTS.md).
"""

from __future__ import annotations

import numpy as np

from scene_builder.errors import DatasetError
from scene_builder.geometry.ground import STEEP_DEG

MAX_STRETCH_RATIO = 2.0
MIN_STRETCH_POINTS = 15
# A GPS stretch spans at least this many receiver accuracies (40 m at a phone's 5 m).
STRETCH_SPAN_ACCURACIES = 8.0
REMEDY = (
    "re-run the poses (build-scene --seed N, or 'driveenv poses --mapper incremental' and "
    "build-scene --poses DATASET), then align again"
)


def steep_depths(points: np.ndarray, centres: np.ndarray, up: np.ndarray) -> list[np.ndarray]:
    """Per camera, the depths below it of the points nearest to it seen steeply below it."""
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(centres).query(points)
    relative = points - centres[nearest]
    along = relative @ up
    across = np.linalg.norm(relative - along[:, None] * up, axis=1)
    steep = np.degrees(np.arctan2(-along, across)) > STEEP_DEG
    return [-along[steep & (nearest == index)] for index in range(len(centres))]


def height_stretches(
    points: np.ndarray, centres: np.ndarray, up: np.ndarray
) -> list[tuple[int, int, float]]:
    """(first frame, last frame, median camera height) of consecutive stretches of the path,
    each holding at least ``MIN_STRETCH_POINTS`` steep points (a short tail joins the last)."""
    depths = steep_depths(points, centres, up)
    groups: list[list[int]] = []
    current: list[int] = []
    count = 0
    for index, found in enumerate(depths):
        current.append(index)
        count += len(found)
        if count >= MIN_STRETCH_POINTS:
            groups.append(current)
            current, count = [], 0
    if current and groups:
        groups[-1].extend(current)
    return [
        (group[0], group[-1], float(np.median(np.concatenate([depths[i] for i in group]))))
        for group in groups
    ]


def _refuse(dataset, stretches: list[tuple[int, int, float]], measure: str) -> None:
    """A one-line error naming the two stretches (by image name) that disagree most, if they
    disagree by more than ``MAX_STRETCH_RATIO``."""
    low = min(stretches, key=lambda s: s[2])
    high = max(stretches, key=lambda s: s[2])
    ratio = high[2] / low[2]
    if ratio > MAX_STRETCH_RATIO:
        names = [frame.image_path.name for frame in dataset.frames]
        raise DatasetError(
            f"{dataset.root}: the camera path is not at one scale: {measure} is {ratio:.1f}x "
            f"larger over {names[high[0]]}-{names[high[1]]} than over "
            f"{names[low[0]]}-{names[low[1]]} (structure from motion placed one stretch at "
            f"another scale; a real capture stays within {MAX_STRETCH_RATIO:g}x); {REMEDY}"
        )


def check_height_stretches(dataset, points: np.ndarray | None, up: np.ndarray) -> list[list]:
    """The camera height stretch by stretch, ``[first, last, height]`` in dataset units; a
    one-line error when two stretches disagree by more than ``MAX_STRETCH_RATIO``."""
    if points is None:
        return []
    stretches = height_stretches(points, dataset.poses[:, :3, 3], up)
    if len(stretches) >= 2:
        _refuse(dataset, stretches, "the cameras' height over the ground")
    return [[first, last, round(height, 5)] for first, last, height in stretches]


def gps_stretches(fit, centres: np.ndarray, up: np.ndarray) -> list[tuple[int, int, float]]:
    """(first frame, last frame, metres per unit) of consecutive stretches of the GPS track,
    each spanning at least ``STRETCH_SPAN_ACCURACIES`` accuracies (a short tail joins the last)."""
    from scene_builder.gps import horizontal, pair_ratios

    track = fit.track
    cameras = horizontal(np.asarray(centres, dtype=np.float64)[track.indices], up)
    reach = STRETCH_SPAN_ACCURACIES * track.accuracy
    groups: list[list[int]] = []
    current: list[int] = []
    for k in range(len(track.indices)):
        current.append(k)
        if np.linalg.norm(track.east_north[k] - track.east_north[current[0]]) >= reach:
            groups.append(current)
            current = []
    if current and groups:
        groups[-1].extend(current)
    stretches = []
    for group in groups:
        ratios = pair_ratios(cameras[group], track.east_north[group], track.accuracy)
        if len(ratios):
            first, last = int(track.indices[group[0]]), int(track.indices[group[-1]])
            stretches.append((first, last, float(np.median(ratios))))
    return stretches


def check_gps_stretches(dataset, fit, up: np.ndarray) -> list[list]:
    """The GPS scale stretch by stretch, ``[first, last, metres per unit]``; a one-line error
    when two stretches disagree by more than ``MAX_STRETCH_RATIO``."""
    stretches = gps_stretches(fit, dataset.poses[:, :3, 3], up)
    if len(stretches) >= 2:
        # metres per unit is the inverse of a length in the dataset: a small stretch has a large
        # scale, so compare the stretches' lengths in dataset units per GPS metre
        inverse = [(first, last, 1.0 / scale) for first, last, scale in stretches]
        _refuse(dataset, inverse, "the path's length per GPS metre")
    return [[first, last, round(scale, 6)] for first, last, scale in stretches]
