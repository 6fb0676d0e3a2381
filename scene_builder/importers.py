"""Import existing poses into DriveEnv's dataset layout: COLMAP models, LLFF, nerfstudio.

Every importer produces the same layout as ``driveenv poses``: ``DATASET/images/``,
``DATASET/transforms.json`` (nerfstudio keys, camera-to-world in OpenGL axes) and, where the
source has 3D points, ``DATASET/colmap/`` and ``DATASET/sparse_points.ply``. Poses stay in the
source's own world frame (only the camera axes change convention); ``driveenv align`` moves them
to the metric, z-up world frame later.

Conventions converted here:
- COLMAP stores world-to-camera in OpenCV axes (x right, y down, z forward): invert, then negate
  the camera's y and z columns.
- LLFF stores camera-to-world 3x4 with columns [down, right, back] and a column [H, W, focal];
  OpenGL columns are [right, up, back] = [col1, -col0, col2]. LLFF keeps one focal per frame
  and assumes the principal point at the image centre.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from common.atomic import atomic_path
from scene_builder.datasets import (
    SPARSE_POINTS_FILE,
    TRANSFORMS_FILE,
    Camera,
    Frame,
    PosedDataset,
    check_camera,
    load_dataset,
    save_dataset,
)
from scene_builder.errors import DatasetError, PoseError

COLMAP_DIR = "colmap"
IMAGES_DIR = "images"
COLMAP_MODEL_FILES = ("cameras", "images", "points3D")
# OpenCV camera axes (y down, z forward) -> OpenGL camera axes (y up, z back).
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class PoseSource:
    """What ``import-poses`` was pointed at, once recognised."""

    kind: str  # "colmap", "llff" or "nerfstudio"
    path: Path  # the model folder, the .npy file or the transforms.json
    images: Path | None  # the folder holding the images (None: paths come from the file)


# --- COLMAP -----------------------------------------------------------------------------------


def camera_from_colmap(colmap_camera) -> Camera:
    """A ``Camera`` from a pycolmap camera; models beyond OPENCV's parameters are refused."""
    name = colmap_camera.model.name
    p = [float(v) for v in colmap_camera.params]
    size = {"width": int(colmap_camera.width), "height": int(colmap_camera.height)}
    if name == "SIMPLE_PINHOLE":
        return Camera(**size, fx=p[0], fy=p[0], cx=p[1], cy=p[2])
    if name == "PINHOLE":
        return Camera(**size, fx=p[0], fy=p[1], cx=p[2], cy=p[3])
    if name == "SIMPLE_RADIAL":
        return Camera(**size, fx=p[0], fy=p[0], cx=p[1], cy=p[2], k1=p[3])
    if name == "RADIAL":
        return Camera(**size, fx=p[0], fy=p[0], cx=p[1], cy=p[2], k1=p[3], k2=p[4])
    if name == "OPENCV":
        return Camera(
            **size, fx=p[0], fy=p[1], cx=p[2], cy=p[3], k1=p[4], k2=p[5], p1=p[6], p2=p[7]
        )
    raise PoseError(
        f"COLMAP camera model {name} is not supported "
        "(use SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL or OPENCV)"
    )


def opengl_camera_to_world(cam_from_world: np.ndarray) -> np.ndarray:
    """Camera-to-world in OpenGL axes from a COLMAP world-to-camera (3x4 or 4x4, OpenCV axes)."""
    world_to_camera = np.eye(4)
    world_to_camera[:3, :] = np.asarray(cam_from_world, dtype=np.float64)[:3, :]
    return np.linalg.inv(world_to_camera) @ OPENCV_TO_OPENGL


def read_colmap_model(model_dir: str | Path):
    """Load a COLMAP model (binary or text) with pycolmap; PoseError if it cannot be read."""
    import pycolmap

    model_dir = Path(model_dir)
    found = [
        f"{stem}{ext}"
        for stem in COLMAP_MODEL_FILES
        for ext in (".bin", ".txt")
        if (model_dir / f"{stem}{ext}").is_file()
    ]
    if len(found) < len(COLMAP_MODEL_FILES):
        raise PoseError(
            f"{model_dir}: not a COLMAP model (needs cameras, images and points3D .bin or .txt)"
        )
    try:
        return pycolmap.Reconstruction(str(model_dir))
    except (RuntimeError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
        raise PoseError(f"{model_dir}: COLMAP model cannot be read ({first_line})") from None


def frames_from_reconstruction(reconstruction, image_dir: Path) -> list[Frame]:
    """One ``Frame`` per registered image, sorted by image name; paths under ``image_dir``."""
    frames = []
    for image in sorted(reconstruction.images.values(), key=lambda im: im.name):
        if not image.has_pose:
            continue
        pose = opengl_camera_to_world(image.cam_from_world().matrix())
        camera = camera_from_colmap(reconstruction.cameras[image.camera_id])
        frames.append(Frame(image_dir / image.name, camera, pose))
    return frames


def write_colmap_outputs(reconstruction, root: Path) -> dict[str, str]:
    """Write the model to ``root/colmap/`` and its points to ``root/sparse_points.ply``."""
    (root / COLMAP_DIR).mkdir(parents=True, exist_ok=True)
    reconstruction.write_binary(str(root / COLMAP_DIR))
    reconstruction.export_PLY(str(root / SPARSE_POINTS_FILE))
    return {"colmap_model": COLMAP_DIR, "sparse_points": SPARSE_POINTS_FILE}


# --- LLFF -------------------------------------------------------------------------------------


def read_llff(npy_path: Path, image_dir: Path) -> tuple[list[Frame], dict[str, Any]]:
    """Frames from ``poses_bounds.npy`` and the sorted images of ``image_dir``."""
    try:
        data = np.load(npy_path)
    except (OSError, ValueError) as error:
        raise PoseError(f"{npy_path}: not a readable .npy file ({error})") from None
    if data.ndim != 2 or data.shape[1] != 17:
        raise PoseError(f"{npy_path}: expected shape (N, 17) for LLFF, got {data.shape}")
    names = _image_files(image_dir)
    if len(names) != len(data):
        raise PoseError(
            f"{npy_path}: has {len(data)} poses but {image_dir} has {len(names)} images"
        )
    actual_height, actual_width = _image_size(image_dir / names[0])
    frames = []
    for row, name in zip(data, names, strict=True):
        matrix = row[:15].reshape(3, 5)
        height, width, focal = matrix[:, 4]
        if not (np.all(np.isfinite(row)) and min(height, width, focal) > 0):
            raise PoseError(
                f"{npy_path}: pose of {name} has height {height}, width {width}, focal {focal} "
                "(each must be finite and positive) or a non-finite value"
            )
        factor = actual_width / width
        if abs(actual_height / height - factor) > 1e-3:
            raise PoseError(
                f"{npy_path}: images are {actual_width}x{actual_height}, "
                f"not a scaled {width:.0f}x{height:.0f} as the poses say"
            )
        pose = np.eye(4)
        pose[:3, :3] = np.stack([matrix[:, 1], -matrix[:, 0], matrix[:, 2]], axis=1)
        pose[:3, 3] = matrix[:, 3]
        camera = Camera(
            width=actual_width,
            height=actual_height,
            fx=float(focal) * factor,
            fy=float(focal) * factor,
            cx=actual_width / 2.0,
            cy=actual_height / 2.0,
        )
        frames.append(Frame(image_dir / name, camera, pose))
    bounds = data[:, 15:17]
    return frames, {"depth_bounds": [float(bounds[:, 0].min()), float(bounds[:, 1].max())]}


def _image_files(image_dir: Path) -> list[str]:
    if not image_dir.is_dir():
        raise PoseError(f"{image_dir}: image folder not found (pass --images)")
    names = sorted(
        p.name
        for p in image_dir.iterdir()
        if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
    )
    if not names:
        raise PoseError(f"{image_dir}: holds no images")
    return names


def _image_size(path: Path) -> tuple[int, int]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise PoseError(f"{path}: not a readable image")
    return int(image.shape[0]), int(image.shape[1])


# --- recognising the source -------------------------------------------------------------------


def _is_colmap_model(folder: Path) -> bool:
    return any((folder / f"cameras{ext}").is_file() for ext in (".bin", ".txt"))


def identify_source(source: str | Path, images: str | Path | None = None) -> PoseSource:
    """Recognise a COLMAP model folder (or a project holding sparse/0), an LLFF
    ``poses_bounds.npy`` (or a folder holding one) or a nerfstudio ``transforms.json``."""
    path = Path(source).expanduser().resolve()
    image_dir = Path(images).expanduser().resolve() if images else None
    if not path.exists():
        raise PoseError(f"{path}: no such file or folder")
    if path.is_dir():
        # A COLMAP project first; then a transforms.json, which in a DriveEnv or ns-process-data
        # folder holds the final poses (aligned, or transformed by nerfstudio) beside colmap/.
        for candidate in (path, path / "sparse" / "0", path / "sparse"):
            if _is_colmap_model(candidate):
                return PoseSource("colmap", candidate, image_dir or _colmap_images(candidate))
        if (path / TRANSFORMS_FILE).is_file():
            return PoseSource("nerfstudio", path / TRANSFORMS_FILE, image_dir)
        if _is_colmap_model(path / COLMAP_DIR):
            return PoseSource(
                "colmap", path / COLMAP_DIR, image_dir or _colmap_images(path / COLMAP_DIR)
            )
        if (path / "poses_bounds.npy").is_file():
            return PoseSource("llff", path / "poses_bounds.npy", image_dir or path / IMAGES_DIR)
        raise PoseError(f"{path}: holds no COLMAP model, poses_bounds.npy or transforms.json")
    if path.suffix == ".npy":
        return PoseSource("llff", path, image_dir or path.parent / IMAGES_DIR)
    if path.suffix == ".json":
        return PoseSource("nerfstudio", path, image_dir)
    raise PoseError(
        f"{path}: not a COLMAP model folder, an LLFF poses_bounds.npy or a transforms.json"
    )


def _colmap_images(model_dir: Path) -> Path:
    """COLMAP projects keep images/ beside sparse/ (model in sparse/0 or sparse)."""
    for parent in (model_dir.parent, model_dir.parent.parent, model_dir.parent.parent.parent):
        if (parent / IMAGES_DIR).is_dir():
            return parent / IMAGES_DIR
    raise PoseError(f"{model_dir}: no images/ folder found beside the model (pass --images)")


# --- import -----------------------------------------------------------------------------------


def import_poses(
    source: str | Path,
    out: str | Path,
    images: str | Path | None = None,
    overwrite: bool = False,
) -> PosedDataset:
    """Import ``source`` into a new dataset at ``out`` (images copied, transforms.json written).

    Refuses to replace an existing non-empty ``out`` unless ``overwrite``; the dataset is built
    in a temporary folder and renamed into place, so a failure leaves nothing behind.
    """
    found = identify_source(source, images)
    out = Path(out).expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DatasetError(
            f"{out}: already exists and is not empty; pass --overwrite to replace it"
        )
    reconstruction = None
    extras: dict[str, Any] = {}
    world_from_source = np.eye(4)
    if found.kind == "colmap":
        reconstruction = read_colmap_model(found.path)
        frames = frames_from_reconstruction(reconstruction, found.images)
    elif found.kind == "llff":
        frames, extras = read_llff(found.path, found.images)
    else:
        existing = _read_nerfstudio(found)
        frames, world_from_source = existing.frames, existing.world_from_source
    if not frames:
        raise PoseError(f"{found.path}: holds no posed images")
    for frame in frames:
        where = f"{found.path}: {frame.image_path.name}"
        check_camera(frame.camera, where)
        if not np.all(np.isfinite(frame.camera_to_world)):
            raise PoseError(f"{where}: the pose holds a NaN or infinite value")
        if not frame.image_path.is_file():
            raise PoseError(f"{found.path}: image {frame.image_path} does not exist")

    with atomic_path(out) as tmp:
        image_dir = tmp / IMAGES_DIR
        image_dir.mkdir(parents=True)
        copied = []
        for frame in frames:
            target = image_dir / frame.image_path.name
            if target.exists():
                raise PoseError(f"{found.path}: two images are named {frame.image_path.name}")
            shutil.copy2(frame.image_path, target)
            copied.append(Frame(target, frame.camera, frame.camera_to_world))
        if reconstruction is not None:
            extras.update(write_colmap_outputs(reconstruction, tmp))
        extras["source"] = {"kind": found.kind, "path": str(found.path)}
        save_dataset(PosedDataset(tmp, copied, world_from_source, extras))
    return load_dataset(out)


def _read_nerfstudio(found: PoseSource) -> PosedDataset:
    """Frames of a nerfstudio transforms.json (validated by ``load_dataset``)."""
    if found.images is not None:
        raise PoseError(
            "--images does not apply to a transforms.json (its frames name their files)"
        )
    return load_dataset(found.path)
