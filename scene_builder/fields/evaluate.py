"""Held-out quality of a field: PSNR, SSIM and the two honest appearance rules.

A held-out frame was never trained on, so it has no appearance code of its own. Two rules:
- ``mean``: the mean of the training codes (the "capture" preset);
- ``left-half`` (NeRF-W): fit a code on the left half of the frame (only the code is
  optimised; geometry and decoder stay frozen) and score the right half only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from skimage.metrics import structural_similarity

from scene_builder.camera import camera_rays, pixel_grid
from scene_builder.fields.embedded import EmbeddedField


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    mse = torch.mean((prediction.clamp(0, 1) - target) ** 2).item()
    return float(-10 * np.log10(max(mse, 1e-12)))


def ssim(prediction: np.ndarray, target: np.ndarray) -> float:
    """SSIM of two (H, W, 3) images in [0, 1] (scikit-image, Gaussian 7x7 as in the NeRF papers)."""
    return float(
        structural_similarity(
            np.clip(prediction, 0, 1), target, channel_axis=2, data_range=1.0, gaussian_weights=True
        )
    )


def mean_code(model: EmbeddedField, train_count: int) -> torch.Tensor:
    """The mean code of the (unaugmented) training images: the "capture" appearance."""
    return model.codes.detach()[:train_count].mean(dim=0)


def fit_code(
    model: EmbeddedField,
    origins: torch.Tensor,
    directions: torch.Tensor,
    target: torch.Tensor,
    initial: torch.Tensor,
    steps: int = 60,
    lr: float = 0.1,
    max_rays: int = 1024,
) -> torch.Tensor:
    """The code (D,) that best renders ``target`` (R, 3) for these rays, geometry frozen.

    The code only enters the decoder, so the rays' samples, weights and features are computed
    once and each of the ``steps`` Adam steps only runs the tiny decoder.
    """
    if origins.shape[0] > max_rays:
        pick = torch.randperm(origins.shape[0], generator=torch.Generator().manual_seed(0))[
            :max_rays
        ]
        origins, directions, target = origins[pick], directions[pick], target[pick]
    c = model.config
    with torch.no_grad():
        t, delta = model.sample_intervals(
            origins, directions, c.render_coarse_samples, c.render_fine_samples
        )
        geometry = model.geometry(origins, directions, t, delta)
    code = initial.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([code], lr=lr)
    for _ in range(steps):
        rgb, _, _ = model.shade(geometry, code.reshape(1, -1).expand(origins.shape[0], -1))
        loss = torch.mean((rgb - target) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return code.detach()


def render_rays(model: EmbeddedField, origins, directions, code: torch.Tensor, chunk: int = 16384):
    """Render rays with one code (D,) by free marching, without gradients; rgb (R, 3)."""
    c = model.config
    out = []
    with torch.no_grad():
        for start in range(0, origins.shape[0], chunk):
            o, d = origins[start : start + chunk], directions[start : start + chunk]
            t, delta = model.sample_intervals(o, d, c.render_coarse_samples, c.render_fine_samples)
            rgb, _, _ = model.composite(o, d, t, delta, code.reshape(1, -1).expand(o.shape[0], -1))
            out.append(rgb)
    return torch.cat(out)


@dataclass
class HoldoutScores:
    """Mean PSNR/SSIM over held-out frames under both appearance rules."""

    psnr_mean_code: float
    ssim_mean_code: float
    psnr_left_half: float
    ssim_left_half: float
    frames: int


def render_image(model, pose, intrinsics, width, height, code) -> torch.Tensor:
    """Render one (H, W, 3) image by free marching with a code (D,)."""
    u, v = pixel_grid(width, height)
    origins, directions = camera_rays(
        pose.expand(u.shape[0], 4, 4), intrinsics.expand(u.shape[0], 4), u, v
    )
    return render_rays(model, origins, directions, code).reshape(height, width, 3)


def evaluate_holdout(model: EmbeddedField, holdout, train_count: int) -> HoldoutScores:
    """Score every held-out frame (``TrainingImages``) under the mean-code and left-half rules."""
    code = mean_code(model, train_count)
    _, height, width, _ = holdout.rgb.shape
    half = width // 2
    scores = {"pm": [], "sm": [], "pl": [], "sl": []}
    u, v = pixel_grid(width, height)
    for i in range(holdout.count):
        target = holdout.rgb[i].float() / 255.0
        distortion = None if holdout.distortion is None else holdout.distortion[i]
        origins, directions = camera_rays(
            holdout.poses[i].expand(u.shape[0], 4, 4),
            holdout.intrinsics[i].expand(u.shape[0], 4),
            u,
            v,
            distortion,
        )
        image = render_rays(model, origins, directions, code).reshape(height, width, 3)
        scores["pm"].append(psnr(image, target))
        scores["sm"].append(ssim(image.numpy(), target.numpy()))
        left = (u < half).reshape(-1)
        flat_target = target.reshape(-1, 3)
        fitted = fit_code(model, origins[left], directions[left], flat_target[left], code)
        right = ~left
        right_image = render_rays(model, origins[right], directions[right], fitted).reshape(
            height, width - half, 3
        )
        right_target = target[:, half:]
        scores["pl"].append(psnr(right_image, right_target))
        scores["sl"].append(ssim(right_image.numpy(), right_target.numpy()))
    return HoldoutScores(
        psnr_mean_code=float(np.mean(scores["pm"])),
        ssim_mean_code=float(np.mean(scores["sm"])),
        psnr_left_half=float(np.mean(scores["pl"])),
        ssim_left_half=float(np.mean(scores["sl"])),
        frames=holdout.count,
    )


@dataclass
class DepthScores:
    """Rendered depth against triangulated keypoints of held-out frames (relative errors)."""

    median_relative_error: float
    within_5_percent: float
    keypoints: int


def evaluate_sparse_depth(model: EmbeddedField, holdout, sparse) -> DepthScores:
    """Expected depth rendered freely along held-out keypoint rays vs their COLMAP point depth.

    ``holdout`` is the held-out ``TrainingImages`` and ``sparse`` their ``SparseDepth``: the
    field never trained on these rays, so this scores its geometry where photometric PSNR
    cannot (a textureless surface renders right at any depth).
    """
    distortion = None if holdout.distortion is None else holdout.distortion[sparse.image]
    origins, directions = camera_rays(
        holdout.poses[sparse.image],
        holdout.intrinsics[sparse.image],
        sparse.u,
        sparse.v,
        distortion,
    )
    c = model.config
    depths = []
    with torch.no_grad():
        for start in range(0, origins.shape[0], 16384):
            o, d = origins[start : start + 16384], directions[start : start + 16384]
            t, delta = model.sample_intervals(o, d, c.render_coarse_samples, c.render_fine_samples)
            geometry = model.geometry(o, d, t, delta)
            depths.append((geometry.weights * t).sum(1) / geometry.weights.sum(1).clamp_min(1e-6))
    relative = (torch.cat(depths) - sparse.depth).abs() / sparse.depth
    return DepthScores(
        median_relative_error=float(relative.median()),
        within_5_percent=float((relative < 0.05).float().mean()),
        keypoints=sparse.count,
    )
