"""Align: move a posed dataset into the world frame (z up, ground z = 0, metres).

Up comes from the ground plane or from the cameras. The ground is looked for where the cameras
see it: every sparse point gets its height over its nearest camera, the floor is the lowest
dense layer of those heights (nothing is seen below the ground), and a seeded, locally optimised
RANSAC fits a plane to the points of that layer, keeping only planes within 45 degrees of the
cameras' mean up, with the cameras above them and moving level over them. For a street this is
the road; for the bird capture (cameras at table height around a figurine on a table) it is the
table top. Without usable points the cameras' mean up vector is used, and the ground is put at
the floor depth below the cameras (or at the lowest camera when there are no points at all).

The yaw is fixed by the first camera: its viewing direction, flattened onto the ground, becomes +x
(so a drive or walk starts heading along +x). The origin is the cameras' centroid dropped onto the
ground. The scale comes from the user's measurement: the cameras' median height above the ground,
the distance between two frames' camera centres, or the GPS positions in the images' EXIF
(``metric``); without one the SfM units are kept and the dataset says so
(``alignment.metric = false``). A forward capture's path is checked to be at one scale from end
to end (``scale_check``).

The similarity is composed into ``world_from_source`` (so aligning twice, or after an import that
already had one, still maps the original SfM frame), and the sparse points stay in that source
frame on disk. NumPy does the plane fit (vectorised hypotheses and local refits: Open3D's
segment_plane returns the single densest plane and cannot be told to reject walls or planes
above the cameras) and the Umeyama similarity used to score poses against a reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.config_cli import option
from scene_builder.datasets import (
    PosedDataset,
    apply_similarity,
    load_dataset,
    load_sparse_points,
    save_dataset,
)
from scene_builder.errors import DatasetError
from scene_builder.geometry.ground import (
    ROAD,
    capture_kind,
    ground_heights,
    path_up,
    steep_floor,
)
from scene_builder.metric import metres_per_unit
from scene_builder.scale_check import check_height_stretches
from scene_builder.similarity import PoseComparison, compare_poses, umeyama

__all__ = [
    "AlignConfig",
    "AlignReport",
    "PoseComparison",
    "align_dataset",
    "alignment_similarity",
    "compare_poses",
    "fit_ground_plane",
    "source_poses",
    "umeyama",
]

UP_METHODS = ("auto", "cameras", "ground")
# A ground plane needs this many sparse points to be trusted.
MIN_GROUND_POINTS = 50
# Share of cameras that must be on the up side of a ground candidate.
MIN_CAMERAS_ABOVE = 0.95
# The floor layer: the lowest one holding this share of the densest layer's points, and the
# band around it (a share of its depth below the cameras) that the plane is fitted to.
FLOOR_DENSITY_SHARE = 0.25
FLOOR_BAND = 0.25
# Locally optimised RANSAC: the best hypotheses refitted, each for up to this many steps.
LOCAL_REFITS = 20
LOCAL_STEPS = 5
# Ground candidates whose camera-height spread exceeds the most level one's by this factor lose.
LEVEL_SPREAD_SLACK = 1.5


@dataclass(frozen=True)
class AlignConfig:
    """How up, origin and scale are found."""

    up: str = option(
        "auto",
        "ground: RANSAC plane of the sparse points; cameras: mean camera up; "
        "auto: ground when it is found, else cameras (a forward capture, whose cameras look "
        "along their path, takes up square to the path unless this is ground)",
        choices=UP_METHODS,
    )
    camera_height: float | None = None  # metres of the cameras above the ground
    distance: tuple[int, int, float] | None = None  # frames I and J are D metres apart
    gps: bool = False  # metres from the GPS positions in the images' EXIF
    ransac_iterations: int = option(1000, "RANSAC iterations of the ground-plane fit")
    inlier_threshold: float = option(
        0.05, "ground-plane inlier distance, as a share of the cameras' depth to the floor"
    )
    max_tilt_deg: float = option(
        45.0, "largest angle, degrees, between the ground normal and the cameras' up"
    )
    seed: int = option(0, "seed of the RANSAC plane fit")

    @classmethod
    def from_cli(cls, up: str, scale: str | None, seed: int = 0) -> AlignConfig:
        """Parse ``--scale camera-height=H``, ``--scale distance=I,J,D`` or ``--scale gps``."""
        camera_height = distance = None
        if scale:
            key, _, value = scale.partition("=")
            try:
                if key == "camera-height":
                    camera_height = float(value)
                elif key == "distance":
                    i, j, d = value.split(",")
                    distance = (int(i), int(j), float(d))
                elif scale != "gps":
                    raise ValueError
            except ValueError:
                raise DatasetError(
                    f"--scale {scale}: expected camera-height=H or distance=I,J,D "
                    "(frame indices I, J; metres H, D), or gps (from the images' EXIF)"
                ) from None
        config = cls(up, camera_height, distance, gps=scale == "gps", seed=seed)
        config.validate()
        return config

    @staticmethod
    def check_scale(text: str) -> str:
        """``--scale`` as given, once it parses as camera-height=H, distance=I,J,D or gps."""
        AlignConfig.from_cli("auto", text)
        return text

    def validate(self) -> None:
        if self.up not in UP_METHODS:
            raise DatasetError(f"--up {self.up}: must be one of {', '.join(UP_METHODS)}")
        if (self.camera_height is not None) + (self.distance is not None) + self.gps > 1:
            raise DatasetError("--scale: give one of camera-height, distance or gps")
        if self.camera_height is not None and not self.camera_height > 0:
            raise DatasetError(f"--scale camera-height={self.camera_height}: must be positive")
        if self.distance is not None and not self.distance[2] > 0:
            raise DatasetError(f"--scale distance: {self.distance[2]} metres must be positive")


@dataclass
class AlignReport:
    root: Path
    up_method: str  # "ground", "cameras" or "path" (a forward capture)
    ground_inliers: int
    scale: float  # metres per source unit (1.0 when no measurement was given)
    metric: bool
    camera_height: float  # cameras' median height above the ground, in world units
    tilt_deg: float  # angle between the ground normal and the cameras' mean up
    extras: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        units = "m" if self.metric else "SfM units (no --scale given)"
        gps = self.extras.get("gps")
        fit = f"; GPS fit residual {gps['residual_m']:.1f} m, {gps['frames']} fixes" if gps else ""
        ground = {
            "ground": f"ground plane from {self.ground_inliers} sparse points",
            "path": "a forward capture: up square to the camera path, ground along it",
        }.get(self.up_method, "up from the cameras")
        return (
            f"{self.root}: aligned, {ground} (tilt {self.tilt_deg:.1f} deg from camera up); "
            f"cameras {self.camera_height:.3f} {units} above the ground; scale {self.scale:.5g}"
            + fit
        )


# --- ground and up ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundPlane:
    """A plane ``normal . x = height`` with the normal pointing to the cameras' side."""

    normal: np.ndarray
    height: float
    inliers: int


def cameras_up(camera_to_world: np.ndarray) -> np.ndarray:
    """The mean of the cameras' up axes (OpenGL +y), normalised."""
    up = camera_to_world[:, :3, 1].mean(0)
    norm = np.linalg.norm(up)
    if norm < 1e-6:
        raise DatasetError("the cameras' up vectors cancel out; pass --up ground")
    return up / norm


def floor_depth(
    points: np.ndarray, centres: np.ndarray, up: np.ndarray
) -> tuple[float, np.ndarray] | None:
    """How far below the cameras the floor is, and every point's height over its nearest camera.

    The floor is the lowest layer, in heights over the nearest camera, that holds at least a
    quarter of the densest layer's points: nothing is seen below the ground, and the ground is
    seen everywhere along the path. Measuring each point against its nearest camera keeps a long
    street whose reconstruction bends slightly, or a path that climbs, from smearing the layer.
    """
    from scipy.spatial import cKDTree

    distances, nearest = cKDTree(centres).query(points)
    local = np.einsum("pd,d->p", points - centres[nearest], up)
    below = local[local < 0]
    if len(below) < MIN_GROUND_POINTS:
        return None
    width = max(0.01 * float(np.median(distances)), -below.min() / 10000)
    counts, edges = np.histogram(below, bins=np.arange(below.min(), width, width))
    first = int(np.flatnonzero(counts >= FLOOR_DENSITY_SHARE * counts.max())[0])
    return -float(edges[first] + edges[first + 1]) / 2, local


def fit_ground_plane(
    points: np.ndarray, centres: np.ndarray, up: np.ndarray, config: AlignConfig
) -> GroundPlane | None:
    """The densest plane under the cameras that faces up and that they move level over, or None.

    Seeded RANSAC with local refits (see ``_local_refit``); among the refitted planes, those the
    camera path crosses at a slant are dropped, and the one with the most inliers is kept.
    """
    floor = floor_depth(points, centres, up)
    if floor is None:
        return None
    depth, local_heights = floor
    layer = points[np.abs(local_heights + depth) < FLOOR_BAND * depth]
    if len(layer) < MIN_GROUND_POINTS // 2:
        return None
    rng = np.random.default_rng(config.seed)
    scored = layer if len(layer) <= 20000 else layer[rng.choice(len(layer), 20000, False)]
    threshold = config.inlier_threshold * depth
    samples = _sample_triplets(scored, config.ransac_iterations, rng)
    normals = np.cross(samples[:, 1] - samples[:, 0], samples[:, 2] - samples[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    keep = lengths > 1e-12
    normals = normals[keep] / lengths[keep, None]
    normals *= np.sign(normals @ up)[:, None]  # face the cameras' up side
    heights = np.einsum("kd,kd->k", normals, samples[keep, 0])
    upright = normals @ up >= np.cos(np.radians(config.max_tilt_deg))
    above = ((centres @ normals.T - heights) > 0).mean(0) >= MIN_CAMERAS_ABOVE
    candidates = np.flatnonzero(upright & above)
    if len(candidates) == 0:
        return None
    distances = np.abs(scored @ normals[candidates].T - heights[candidates])
    counts = (distances < threshold).sum(0)
    planes = [
        plane
        for index in candidates[np.argsort(counts)[::-1][:LOCAL_REFITS]]
        if (
            plane := _local_refit(
                scored, normals[index], heights[index], threshold, centres, up, config
            )
        )
        is not None
    ]
    if not planes:
        return None
    # A capture is made at a nearly constant height over its ground (hand-held, on a vehicle):
    # a plane that the camera path crosses at a slant is a wall, a slope or an object's side.
    spreads = np.array([np.std(centres @ plane.normal - plane.height) for plane in planes])
    level = spreads <= LEVEL_SPREAD_SLACK * spreads.min() + threshold
    best = max((p for p, ok in zip(planes, level, strict=True) if ok), key=lambda p: p.inliers)
    return best if best.inliers >= MIN_GROUND_POINTS // 2 else None


def _local_refit(
    points: np.ndarray,
    normal: np.ndarray,
    height: float,
    threshold: float,
    centres: np.ndarray,
    up: np.ndarray,
    config: AlignConfig,
) -> GroundPlane | None:
    """Locally optimised RANSAC: refit the plane to its inliers until they stop changing.

    A hypothesis from three points is noisy; refitting converges on the dense plane nearby,
    which makes the result stable across seeds. Refits that tilt past the limit or put the
    cameras below the plane are rejected.
    """
    count = 0
    for _ in range(LOCAL_STEPS):
        inliers = points[np.abs(points @ normal - height) < threshold]
        if len(inliers) < 3 or len(inliers) <= count:
            break
        centre = inliers.mean(0)
        refined = np.linalg.svd(inliers - centre, full_matrices=False)[2][2]
        refined *= np.sign(refined @ up) or 1.0
        refined_height = float(refined @ centre)
        if refined @ up < np.cos(np.radians(config.max_tilt_deg)):
            break
        if ((centres @ refined - refined_height) > 0).mean() < MIN_CAMERAS_ABOVE:
            break
        normal, height, count = refined, refined_height, len(inliers)
    if count == 0:
        return None
    final = int((np.abs(points @ normal - height) < threshold).sum())
    return GroundPlane(normal, height, final)


def _sample_triplets(points: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 3, 3) point triplets: half drawn anywhere, half among a point's 12 neighbours.

    A table or road is often a few percent of the points; three uniform draws all land on it
    once in thousands of tries, while a point and two of its neighbours do once in tens.
    """
    from scipy.spatial import cKDTree

    uniform = points[rng.integers(0, len(points), (count - count // 2, 3))]
    neighbours = min(12, len(points))
    anchors = rng.integers(0, len(points), count // 2)
    _, near = cKDTree(points).query(points[anchors], k=neighbours)
    picks = (
        np.stack([rng.choice(np.arange(1, neighbours), 2, replace=False) for _ in anchors])
        if len(anchors)
        else np.zeros((0, 2), int)
    )
    local = np.stack(
        [
            anchors,
            near[np.arange(len(anchors)), picks[:, 0]],
            near[np.arange(len(anchors)), picks[:, 1]],
        ],
        axis=1,
    )
    return np.concatenate([uniform, points[local]])


def _heading(camera_to_world: np.ndarray, centres: np.ndarray, up: np.ndarray) -> np.ndarray:
    """+x of the world: the first camera's viewing direction on the ground (or the main axis)."""
    forward = -camera_to_world[0, :3, 2]
    flat = forward - (forward @ up) * up
    if np.linalg.norm(flat) < 0.1:  # looking straight down or up: use the trajectory's axis
        spread = centres - centres.mean(0)
        spread -= np.outer(spread @ up, up)
        flat = np.linalg.svd(spread, full_matrices=False)[2][0]
    return flat / np.linalg.norm(flat)


# --- align ------------------------------------------------------------------------------------


def alignment_similarity(
    dataset: PosedDataset, config: AlignConfig
) -> tuple[np.ndarray, AlignReport]:
    """The 4x4 similarity from the dataset's current frame to the world frame, and a report."""
    poses = dataset.poses
    centres = poses[:, :3, 3]
    up = cameras_up(poses)
    sparse = load_sparse_points(dataset)
    points = sparse[0] if sparse is not None and len(sparse[0]) >= MIN_GROUND_POINTS else None

    kind = capture_kind(poses)
    if kind == ROAD and config.up != "ground":
        return _road_similarity(dataset, config, points)
    plane = None
    if config.up != "cameras" and points is not None:
        plane = fit_ground_plane(points, centres, up, config)
    if config.up == "ground" and plane is None:
        found = 0 if points is None else len(points)
        raise DatasetError(
            f"{dataset.root}: no ground plane under the cameras in {found} sparse points "
            "(use --up cameras)"
        )
    if plane is not None:
        tilt = float(np.degrees(np.arccos(np.clip(plane.normal @ up, -1, 1))))
        up, ground = plane.normal, plane.height
    else:
        tilt = 0.0
        floor = floor_depth(points, centres, up) if points is not None else None
        ground = float(np.median(centres @ up)) - floor[0] if floor is not None else None
    if ground is None:
        if config.camera_height is not None:
            raise DatasetError(
                f"{dataset.root}: no sparse points to find the ground, so camera-height cannot "
                "set the scale (use --scale distance=I,J,D)"
            )
        ground = float((centres @ up).min())  # unknown: put the ground at the lowest camera

    similarity, report = _similarity(dataset, config, up, ground, centres @ up - ground)
    report.up_method = "ground" if plane is not None else "cameras"
    report.ground_inliers = plane.inliers if plane is not None else 0
    report.tilt_deg = tilt
    report.extras["scene_kind"] = kind
    return similarity, report


def _similarity(
    dataset: PosedDataset,
    config: AlignConfig,
    up: np.ndarray,
    ground: float,
    camera_heights: np.ndarray,
) -> tuple[np.ndarray, AlignReport]:
    """The similarity putting ``up`` on +z, the ground level ``ground`` (along ``up``) at z = 0
    and the first camera's heading on +x, scaled by ``config``; and its report."""
    poses = dataset.poses
    centres = poses[:, :3, 3]
    x_axis = _heading(poses, centres, up)
    rotation = np.stack([x_axis, np.cross(up, x_axis), up])
    scale, measured = metres_per_unit(config, dataset, up, camera_heights)
    centroid = centres.mean(0)
    origin = centroid - (centroid @ up - ground) * up
    similarity = np.eye(4)
    similarity[:3, :3] = scale * rotation
    similarity[:3, 3] = -scale * rotation @ origin
    report = AlignReport(
        root=dataset.root,
        up_method="cameras",
        ground_inliers=0,
        scale=scale,
        metric=config.camera_height is not None or config.distance is not None or config.gps,
        camera_height=float(np.median(camera_heights) * scale),
        tilt_deg=0.0,
        extras=measured,
    )
    return similarity, report


def _road_similarity(
    dataset: PosedDataset, config: AlignConfig, points: np.ndarray | None
) -> tuple[np.ndarray, AlignReport]:
    """A forward capture's world frame (``geometry.ground``): up square to the camera path,
    each camera's height over the floor seen near it, the ground level their median below."""
    poses = dataset.poses
    centres = poses[:, :3, 3]
    up = path_up(poses)
    floor = floor_depth(points, centres, up) if points is not None else None
    if floor is None:
        raise DatasetError(
            f"{dataset.root}: a forward capture, but too few sparse points below the cameras to "
            "find the road (film with the road in view, or with more texture on it)"
        )
    stretches = check_height_stretches(dataset, points, up)
    heights = ground_heights(points, centres, up, steep_floor(points, centres, up) or floor[0])
    ground = float(np.median(centres @ up - heights))
    similarity, report = _similarity(dataset, config, up, ground, heights)
    report.up_method = "path"
    tilt = np.degrees(np.arccos(np.clip(up @ cameras_up(poses), -1, 1)))
    report.tilt_deg = float(tilt)
    report.extras.update(
        scene_kind=ROAD,
        camera_heights=[round(float(h * report.scale), 5) for h in heights],
        height_stretches=[[a, b, round(h * report.scale, 5)] for a, b, h in stretches],
    )
    return similarity, report


def align_dataset(dataset_dir: str | Path, config: AlignConfig | None = None) -> AlignReport:
    """Align the dataset in place: poses to the world frame, ``world_from_source`` composed."""
    config = config or AlignConfig()
    config.validate()
    dataset = load_dataset(dataset_dir)
    similarity, report = alignment_similarity(dataset, config)
    for frame, pose in zip(
        dataset.frames, apply_similarity(similarity, dataset.poses), strict=True
    ):
        frame.camera_to_world = pose
    dataset.world_from_source = similarity @ dataset.world_from_source
    dataset.extras["alignment"] = {
        **{k: v for k, v in asdict(report).items() if k not in ("root", "extras")},
        **report.extras,
        "config": asdict(config),
    }
    save_dataset(dataset)
    return report


def source_poses(dataset: PosedDataset) -> np.ndarray:
    """The poses back in the source (SfM) frame: undoes every alignment applied so far."""
    return apply_similarity(np.linalg.inv(dataset.world_from_source), dataset.poses)
