"""Pinhole cameras: intrinsics, OpenCV distortion, pixel rays and projection, in one place.

Conventions (shared by the datasets, the fields, the mesher and the simulator): camera axes are
OpenGL's (x right, y up, looking down -z), poses are camera-to-world 4x4, intrinsics are
``(fx, fy, cx, cy)`` in pixels. Pixel (u, v) covers [u, u+1) x [v, v+1) and its ray goes through
the centre (u + 0.5, v + 0.5). A ray direction is NOT normalised: it is ``R @ [x, -y, -1]`` for
normalised image coordinates (x, y), so its camera-z component is -1 and the ray parameter ``t``
of a point IS the point's z-depth. That makes a field's ``sum(w * t)`` the z-depth, and lets a
z-depth from mesh ray casting place field samples directly (``t = depth``).

The numpy functions serve ray casting (mesher, simulator, preview); the torch ones (``pixel_grid``,
``camera_rays``, ``undistort``, ``distort``) serve field rendering and training.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def fov_intrinsics(width: int, height: int, fov_deg: float) -> np.ndarray:
    """(fx, fy, cx, cy) float32 of a square-pixel camera with horizontal field of view
    ``fov_deg`` and its principal point at the image centre."""
    fx = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return np.array([fx, fx, 0.5 * width, 0.5 * height], dtype=np.float32)


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world 4x4 (OpenGL axes: x right, y up, looking down -z) from eye to target."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = (
        right,
        np.cross(right, forward),
        -forward,
        eye,
    )
    return pose


def local_directions(intrinsics, width: int, height: int, dtype=np.float32) -> np.ndarray:
    """(H*W, 3) camera-frame directions through the pixel centres, row-major, with z = -1."""
    fx, fy, cx, cy = np.asarray(intrinsics, dtype=np.float64).reshape(4)
    v, u = np.indices((height, width), dtype=np.float64) + 0.5
    directions = np.stack([(u - cx) / fx, -(v - cy) / fy, -np.ones_like(u)], axis=-1)
    return directions.reshape(-1, 3).astype(dtype)


def world_directions(camera_to_world, intrinsics, width: int, height: int) -> np.ndarray:
    """(H, W, 3) world directions through the pixel centres, z-depth-scaled (float64)."""
    pose = np.asarray(camera_to_world, dtype=np.float64)
    local = local_directions(intrinsics, width, height, np.float64)
    return (local @ pose[:3, :3].T).reshape(height, width, 3)


def camera_ray_batch(poses: np.ndarray, directions: np.ndarray, out: np.ndarray | None = None):
    """Rays (N, P, 6) float32, origin then direction, for N camera-to-world ``poses`` and
    camera-frame ``directions`` (P, 3); written into ``out`` when given (reused buffers)."""
    poses = np.asarray(poses, dtype=np.float32).reshape(-1, 4, 4)
    n, p = len(poses), len(directions)
    if out is None or out.shape != (n, p, 6):
        out = np.empty((n, p, 6), dtype=np.float32)
    out[:, :, :3] = poses[:, None, :3, 3]
    np.matmul(directions[None], poses[:, :3, :3].transpose(0, 2, 1), out=out[:, :, 3:])
    return out


def project(points: np.ndarray, camera_to_world, intrinsics):
    """World points (P, 3) -> pixel coordinates u, v (continuous, pixel centres at +0.5) and
    z-depth in front of the camera (P,); u, v are NaN or infinite where z <= 0."""
    pose = np.asarray(camera_to_world, dtype=np.float64)
    world_to_camera = np.linalg.inv(pose)
    local = np.asarray(points) @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = -local[:, 2]
    fx, fy, cx, cy = np.asarray(intrinsics, dtype=np.float64).reshape(4)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = fx * local[:, 0] / z + cx
        v = -fy * local[:, 1] / z + cy
    return u, v, z


def points_at_depth(camera_to_world, intrinsics, depth: np.ndarray) -> np.ndarray:
    """World points (H, W, 3) of the pixel centres of a z-depth image (H, W)."""
    height, width = depth.shape
    directions = world_directions(camera_to_world, intrinsics, width, height)
    return directions * depth[..., None] + np.asarray(camera_to_world)[:3, 3]


def pixel_grid(width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates (u, v), each (H*W,), row-major like an image."""
    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float32) + 0.5,
        torch.arange(width, dtype=torch.float32) + 0.5,
        indexing="ij",
    )
    return u.reshape(-1), v.reshape(-1)


def undistort(
    x: torch.Tensor, y: torch.Tensor, distortion: torch.Tensor, iterations: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert OpenCV's radial-tangential model by fixed-point iteration (as cv2.undistortPoints).

    ``distortion`` is (4,) or (R, 4): k1, k2, p1, p2.
    """
    k1, k2, p1, p2 = distortion.reshape(-1, 4).unbind(-1)
    xu, yu = x, y
    for _ in range(iterations):
        r2 = xu * xu + yu * yu
        radial = 1 + k1 * r2 + k2 * r2 * r2
        dx = 2 * p1 * xu * yu + p2 * (r2 + 2 * xu * xu)
        dy = p1 * (r2 + 2 * yu * yu) + 2 * p2 * xu * yu
        xu = (x - dx) / radial
        yu = (y - dy) / radial
    return xu, yu


def distort(
    x: torch.Tensor, y: torch.Tensor, distortion: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's radial-tangential distortion of normalised image coordinates."""
    k1, k2, p1, p2 = distortion.reshape(-1, 4).unbind(-1)
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2
    return (
        x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
        y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y,
    )


def camera_rays(
    camera_to_world: torch.Tensor,
    intrinsics: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    distortion: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and (z-depth-scaled) directions for pixel coordinates ``u, v``.

    ``camera_to_world`` is (R, 4, 4) per ray or (4, 4); ``intrinsics`` (R, 4) or (4,) as
    fx, fy, cx, cy; ``distortion`` None or (R, 4) / (4,) OpenCV k1, k2, p1, p2 of the image
    the pixels come from. Returns origins (R, 3) and directions (R, 3).
    """
    intrinsics = intrinsics.reshape(-1, 4)
    fx, fy, cx, cy = intrinsics.unbind(-1)
    x, y = (u - cx) / fx, (v - cy) / fy
    if distortion is not None:
        x, y = undistort(x, y, distortion)
    local = torch.stack([x, -y, -torch.ones_like(x)], dim=-1)
    pose = camera_to_world.reshape(-1, 4, 4)
    directions = torch.einsum("rij,rj->ri", pose[:, :3, :3], local)
    origins = pose[:, :3, 3].expand_as(directions)
    return origins, directions
