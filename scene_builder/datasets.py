"""Posed datasets in nerfstudio's ``transforms.json`` layout: the contract between scene stages.

What we write, nerfstudio can train on; what nerfstudio's ``ns-process-data`` (or Polycam,
Record3D) writes, we can read. Conventions (see DESIGN.md): poses are camera-to-world 4x4 in the
OpenGL camera frame (x right, y up, looking down -z); file paths are relative to the dataset root.

DriveEnv keeps its own additions under the ``"driveenv"`` key, which nerfstudio ignores:
``world_from_source`` (the 4x4 similarity applied by ``align``, so it can be undone) and free-form
provenance. Per-frame intrinsics override the shared ones, as in nerfstudio.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import write_json_atomic
from scene_builder.errors import DatasetError

TRANSFORMS_FILE = "transforms.json"
# Sparse SfM points, stored in the SOURCE frame (like DATASET/colmap/); ``load_sparse_points``
# maps them to the dataset's world frame with ``world_from_source``.
SPARSE_POINTS_FILE = "sparse_points.ply"
INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
DISTORTION_KEYS = ("k1", "k2", "p1", "p2")


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels with OpenCV radial-tangential distortion."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    k1: float = 0.0
    k2: float = 0.0
    p1: float = 0.0
    p2: float = 0.0

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the usual name of the calibration matrix
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    @property
    def has_distortion(self) -> bool:
        return any(abs(v) > 0 for v in (self.k1, self.k2, self.p1, self.p2))

    def scaled(self, factor: float) -> Camera:
        """The same camera for images resized by ``factor`` (0.25 = quarter resolution)."""
        return replace(
            self,
            width=int(round(self.width * factor)),
            height=int(round(self.height * factor)),
            fx=self.fx * factor,
            fy=self.fy * factor,
            cx=self.cx * factor,
            cy=self.cy * factor,
        )

    def to_json(self) -> dict[str, float | int]:
        return {
            "fl_x": self.fx,
            "fl_y": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "w": self.width,
            "h": self.height,
            "k1": self.k1,
            "k2": self.k2,
            "p1": self.p1,
            "p2": self.p2,
        }


@dataclass
class Frame:
    """One posed image: its path (absolute once loaded), camera and camera-to-world pose."""

    image_path: Path
    camera: Camera
    camera_to_world: np.ndarray  # (4, 4) float64, OpenGL camera axes

    def __post_init__(self) -> None:
        self.camera_to_world = np.asarray(self.camera_to_world, dtype=np.float64).reshape(4, 4)


@dataclass
class PosedDataset:
    """Images with cameras and poses, stored under ``root`` with a ``transforms.json``."""

    root: Path
    frames: list[Frame]
    world_from_source: np.ndarray = field(default_factory=lambda: np.eye(4))
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def poses(self) -> np.ndarray:
        """All camera-to-world matrices, shape (N, 4, 4)."""
        return np.stack([f.camera_to_world for f in self.frames])

    @property
    def camera(self) -> Camera:
        """The camera shared by the frames (the first frame's where they differ)."""
        return self.frames[0].camera

    def __len__(self) -> int:
        return len(self.frames)


def _camera_from(entry: dict[str, Any], fallback: dict[str, Any], where: str) -> Camera:
    merged = {
        **fallback,
        **{k: v for k, v in entry.items() if k in INTRINSIC_KEYS + DISTORTION_KEYS},
    }
    missing = [k for k in INTRINSIC_KEYS if k not in merged]
    if missing:
        raise DatasetError(f"{where}: missing intrinsics {', '.join(missing)}")
    for key in (*INTRINSIC_KEYS, *DISTORTION_KEYS):
        if key in merged and not _is_number(merged[key]):
            raise DatasetError(f"{where}: intrinsic {key} is {merged[key]!r}, not a number")
    for key in ("w", "h"):
        if float(merged[key]) != int(merged[key]):
            raise DatasetError(f"{where}: {key} is {merged[key]!r}, not a whole number of pixels")
    camera = Camera(
        width=int(merged["w"]),
        height=int(merged["h"]),
        fx=float(merged["fl_x"]),
        fy=float(merged["fl_y"]),
        cx=float(merged["cx"]),
        cy=float(merged["cy"]),
        **{k: float(merged.get(k, 0.0)) for k in DISTORTION_KEYS},
    )
    check_camera(camera, where)
    return camera


def _is_number(value: Any) -> bool:
    """A JSON number (not a bool, not a numeric string) that fits a float (NaN included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def check_camera(camera: Camera, where: str) -> None:
    """``DatasetError`` naming ``where`` unless the size is positive and the focal lengths,
    principal point and distortion are finite, with positive focal lengths and the principal
    point on the image (between 0 and the width/height)."""
    if camera.width < 1 or camera.height < 1:
        raise DatasetError(
            f"{where}: image size {camera.width}x{camera.height} must be at least 1x1 pixel"
        )
    values = {"fl_x": camera.fx, "fl_y": camera.fy, "cx": camera.cx, "cy": camera.cy}
    values.update({k: getattr(camera, k) for k in DISTORTION_KEYS})
    for key, value in values.items():
        if not np.isfinite(value):
            raise DatasetError(f"{where}: intrinsic {key} is {value}, must be finite")
    for key in ("fl_x", "fl_y"):
        if values[key] <= 0:
            raise DatasetError(f"{where}: focal length {key} is {values[key]}, must be positive")
    for key, size in (("cx", camera.width), ("cy", camera.height)):
        if not 0 <= values[key] <= size:
            raise DatasetError(
                f"{where}: principal point {key} is {values[key]}, outside the image (0 to {size})"
            )


def read_matrix(value: Any, where: str, name: str, rows: tuple[int, ...] = (4,)) -> np.ndarray:
    """A finite 4x4 matrix from JSON: a list of ``rows`` lists of 4 numbers (a 3x4 gets the
    row 0 0 0 1); the last row of a 4x4 must be 0 0 0 1. ``DatasetError`` naming ``where``."""
    shape_ok = isinstance(value, list) and len(value) in rows
    if not shape_ok or not all(isinstance(row, list) and len(row) == 4 for row in value):
        shape = " or ".join(f"{n}x4" for n in rows)
        raise DatasetError(f"{where}: {name!r} must be a {shape} list of rows of numbers")
    if not all(_is_number(x) for row in value for x in row):
        raise DatasetError(f"{where}: {name!r} holds something that is not a number")
    matrix = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(matrix)):
        raise DatasetError(f"{where}: {name!r} holds a NaN or infinite value")
    if matrix.shape == (3, 4):
        return np.vstack([matrix, [0, 0, 0, 1]])
    if not np.allclose(matrix[3], [0, 0, 0, 1]):
        raise DatasetError(f"{where}: {name!r} must end with the row 0 0 0 1")
    return matrix


def _world_from_source(meta: dict[str, Any], path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """``driveenv.world_from_source`` (a similarity with positive scale) and the other extras."""
    ours = meta.get("driveenv", {})
    if not isinstance(ours, dict):
        raise DatasetError(f"{path}: 'driveenv' must be an object, got {type(ours).__name__}")
    if "world_from_source" not in ours:
        return np.eye(4), dict(ours)
    matrix = read_matrix(ours["world_from_source"], str(path), "driveenv.world_from_source")
    if np.linalg.det(matrix[:3, :3]) <= 0:
        raise DatasetError(
            f"{path}: 'driveenv.world_from_source' must be a similarity with positive scale"
        )
    return matrix, {k: v for k, v in ours.items() if k != "world_from_source"}


def load_dataset(root: str | Path) -> PosedDataset:
    """Read ``root/transforms.json`` (or the given transforms file) into a ``PosedDataset``.

    Raises ``DatasetError`` naming the file (and the frame) and the first problem found: a
    missing file, invalid JSON, missing or non-numeric intrinsics, a non-positive size or focal
    length, a principal point off the image, a non-finite value, a frame without a path or with
    a matrix that is not 4x4 (or 3x4) numbers, a ``driveenv`` block that is not an object with a
    4x4 ``world_from_source``, or an image that does not exist.
    """
    path = Path(root)
    if path.is_dir():
        path = path / TRANSFORMS_FILE
    if not path.is_file():
        raise DatasetError(
            f"{path}: no such file (run 'driveenv poses' or 'driveenv import-poses')"
        )
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list) or not meta["frames"]:
        raise DatasetError(f"{path}: needs a non-empty 'frames' list")
    shared = {k: meta[k] for k in INTRINSIC_KEYS + DISTORTION_KEYS if k in meta}
    world_from_source, extras = _world_from_source(meta, path)
    frames = []
    for index, entry in enumerate(meta["frames"]):
        where = f"{path}: frames[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("file_path"), str):
            raise DatasetError(f"{where}: missing 'file_path' (a string)")
        if "\x00" in entry["file_path"]:
            raise DatasetError(f"{where}: 'file_path' holds a NUL character")
        if "transform_matrix" not in entry:
            raise DatasetError(f"{where}: missing 'transform_matrix'")
        matrix = read_matrix(entry["transform_matrix"], where, "transform_matrix", rows=(3, 4))
        camera = _camera_from(entry, shared, where)
        image_path = (path.parent / entry["file_path"]).resolve()
        if not image_path.is_file():
            raise DatasetError(f"{where}: image {entry['file_path']} does not exist")
        frames.append(Frame(image_path, camera, matrix))
    return PosedDataset(path.parent.resolve(), frames, world_from_source, extras)


def save_dataset(dataset: PosedDataset) -> Path:
    """Write ``dataset.root/transforms.json`` atomically; returns its path.

    Intrinsics shared by all frames go to the top level (as nerfstudio writes them); frames whose
    camera differs carry their own.
    """
    shared = dataset.camera
    meta: dict[str, Any] = {"camera_model": "OPENCV", **shared.to_json(), "frames": []}
    for frame in dataset.frames:
        entry: dict[str, Any] = {
            "file_path": Path(frame.image_path)
            .resolve()
            .relative_to(dataset.root.resolve())
            .as_posix(),
            "transform_matrix": np.asarray(frame.camera_to_world).tolist(),
        }
        if frame.camera != shared:
            entry.update(frame.camera.to_json())
        meta["frames"].append(entry)
    meta["driveenv"] = {
        "world_from_source": np.asarray(dataset.world_from_source).tolist(),
        **dataset.extras,
    }
    target = dataset.root / TRANSFORMS_FILE
    write_json_atomic(target, meta)
    return target


def apply_similarity(similarity: np.ndarray, camera_to_world: np.ndarray) -> np.ndarray:
    """Camera-to-world poses (N,4,4) moved by a 4x4 similarity ``s*R | t``.

    The camera's rotation is turned by R and its centre mapped by the full similarity; the pose
    stays a rigid transform (the scale goes into the translation, as nerfstudio expects).
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    scale = np.cbrt(np.linalg.det(similarity[:3, :3]))
    rotation = similarity[:3, :3] / scale
    poses = np.array(camera_to_world, dtype=np.float64, copy=True)
    poses[..., :3, :3] = rotation @ poses[..., :3, :3]
    poses[..., :3, 3] = poses[..., :3, 3] @ similarity[:3, :3].T + similarity[:3, 3]
    return poses


def load_sparse_points(dataset: PosedDataset) -> tuple[np.ndarray, np.ndarray] | None:
    """The dataset's sparse SfM points in its world frame: (xyz (P,3), rgb uint8 (P,3)), or None.

    The PLY keeps the source frame of the structure from motion, so alignment never rewrites it.
    """
    import trimesh

    path = dataset.root / dataset.extras.get("sparse_points", SPARSE_POINTS_FILE)
    if not path.is_file():
        return None
    try:
        cloud = trimesh.load(path, file_type="ply")
    except Exception as error:  # trimesh raises many types for a corrupt file
        raise DatasetError(f"{path}: not a readable PLY point cloud ({error})") from None
    xyz = np.asarray(cloud.vertices, dtype=np.float64)
    colors = getattr(cloud, "colors", None)
    rgb = (
        np.asarray(colors)[:, :3].astype(np.uint8)
        if colors is not None and len(colors) == len(xyz)
        else np.full((len(xyz), 3), 128, dtype=np.uint8)
    )
    world = xyz @ dataset.world_from_source[:3, :3].T + dataset.world_from_source[:3, 3]
    return world, rgb


def split_indices(count: int, holdout_every: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out frame indices: every ``holdout_every``-th frame (0, 8, 16, ...) is held out.

    The same rule everywhere (field training, fidelity evaluation) so that no stage ever scores
    itself on a frame the field was trained on. ``holdout_every=0`` holds out nothing.
    """
    indices = np.arange(count)
    if holdout_every <= 0:
        return indices, indices[:0]
    held = indices % holdout_every == 0
    return indices[~held], indices[held]
