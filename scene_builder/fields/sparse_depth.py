"""Depth of the structure-from-motion keypoints: a check of a field's geometry where colour cannot see it.

Why: photometric scores say nothing about depth (a textureless surface renders the right colour
at any depth). COLMAP measured where some rays end: each keypoint that belongs to a triangulated
point is a ray with a known depth. Rendering depth along the held-out frames' keypoint rays and
comparing it with their points (``fields.evaluate.evaluate_sparse_depth``) scores the geometry
on real data, with no reference mesh.

The keypoints come from the dataset's COLMAP model (``DATASET/colmap``, kept by ``poses`` and by
``import-poses`` of a COLMAP model), matched to frames by file name. A point's depth is measured
in the dataset's (aligned) camera, so alignment and scaling are accounted for; an observation
whose point does not reproject within ``max_reprojection_px`` of its keypoint in that camera is
dropped (a model that does not belong to these poses gives no observations rather than wrong
ones). Datasets without a COLMAP model (LLFF, transforms.json imports) have none.

Tried and not kept: the same observations as a training loss (DS-NeRF's idea, a relative L1
spread of the ray weights around the point depth): it collapsed the field's held-out colour,
and without it the keypoint depth error is already small, since the noisy white table is not
where keypoints are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scene_builder.datasets import PosedDataset


@dataclass
class SparseDepth:
    """Observed keypoints of some frames with the z-depth of their triangulated point."""

    image: torch.Tensor  # (M,) index into the frames asked for
    u: torch.Tensor  # (M,) pixel x at the training resolution (pixel centres at +0.5)
    v: torch.Tensor  # (M,) pixel y
    depth: torch.Tensor  # (M,) z-depth in world units

    @property
    def count(self) -> int:
        return int(self.image.shape[0])


def load_sparse_depth(
    dataset: PosedDataset,
    frame_indices: np.ndarray,
    downscale: int,
    min_track_length: int = 3,
    max_reprojection_px: float = 2.0,
) -> SparseDepth | None:
    """Keypoint depths for the frames ``frame_indices`` (in that order), or None without a model.

    Points seen in fewer than ``min_track_length`` images are dropped (two-view points are the
    least certain); ``max_reprojection_px`` is measured at full resolution.
    """
    model_dir = dataset.root / dataset.extras.get("colmap_model", "colmap")
    if not _has_model(model_dir):
        return None
    import pycolmap

    try:
        reconstruction = pycolmap.Reconstruction(str(model_dir))
    except Exception:  # an unreadable model: no keypoint depth rather than a failed run
        return None
    by_name = {Path(image.name).name: image for image in reconstruction.images.values()}
    world_from_source = dataset.world_from_source
    points = reconstruction.points3D
    images, us, vs, depths = [], [], [], []
    for train_index, frame_index in enumerate(frame_indices):
        frame = dataset.frames[int(frame_index)]
        image = by_name.get(frame.image_path.name)
        if image is None:
            continue
        observed = [
            (p.xy, points[p.point3D_id])
            for p in image.points2D
            if p.has_point3D() and points[p.point3D_id].track.length() >= min_track_length
        ]
        if not observed:
            continue
        xy = np.array([o[0] for o in observed], dtype=np.float64)
        xyz = np.array([o[1].xyz for o in observed], dtype=np.float64)
        world = xyz @ world_from_source[:3, :3].T + world_from_source[:3, 3]
        camera_from_world = np.linalg.inv(frame.camera_to_world)
        local = world @ camera_from_world[:3, :3].T + camera_from_world[:3, 3]
        depth = -local[:, 2]  # OpenGL camera: looking down -z
        camera = frame.camera
        # Reproject with the pinhole part; keypoints are compared after removing distortion.
        with np.errstate(divide="ignore", invalid="ignore"):
            x = camera.fx * local[:, 0] / depth + camera.cx
            y = -camera.fy * local[:, 1] / depth + camera.cy
        scale = camera.width / reconstruction.cameras[image.camera_id].width
        keypoint = xy * scale
        if camera.has_distortion:
            keypoint = _undistort_pixels(keypoint, camera)
        error = np.hypot(x - keypoint[:, 0], y - keypoint[:, 1]) / scale
        keep = (depth > 0) & (error < max_reprojection_px)
        training = xy[keep] * scale / downscale
        images.append(np.full(int(keep.sum()), train_index))
        us.append(training[:, 0])
        vs.append(training[:, 1])
        depths.append(depth[keep])
    if not images or sum(len(i) for i in images) == 0:
        return None
    return SparseDepth(
        image=torch.from_numpy(np.concatenate(images)).long(),
        u=torch.from_numpy(np.concatenate(us)).float(),
        v=torch.from_numpy(np.concatenate(vs)).float(),
        depth=torch.from_numpy(np.concatenate(depths)).float(),
    )


def _has_model(folder: Path) -> bool:
    names = ("cameras", "images", "points3D")
    return any(all((folder / f"{n}.{ext}").is_file() for n in names) for ext in ("bin", "txt"))


def _undistort_pixels(pixels: np.ndarray, camera) -> np.ndarray:
    """Distorted pixel coordinates -> the pinhole pixels of the same rays (OpenCV model)."""
    import cv2

    matrix = camera.K
    coefficients = np.array([camera.k1, camera.k2, camera.p1, camera.p2])
    points = cv2.undistortPoints(pixels.reshape(-1, 1, 2), matrix, coefficients, P=matrix)
    return points.reshape(-1, 2)
