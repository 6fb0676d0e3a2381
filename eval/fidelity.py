"""Rendering fidelity: how close the field's renderings are to real photographs it never saw.

At the poses of the held-out frames of the posed dataset (``split_indices`` under the field's own
hold-out rule, read from its ``field.json``: the frames it did not train on), the field renders
each lighting preset at a reduced size;
each rendering is compared with the real frame (resized the same way, undistorted when the camera
has distortion) by PSNR and SSIM (scikit-image). Only the ``capture`` preset aims at the light
the real frames were taken in; the other presets' numbers say how far each moves the look.

Two views are measured: the radiance field alone (marching freely: the field's own fidelity)
and ``SimulatorView``, the simulator's camera renderer (the baked texture, the vertex-coloured
mesh, or the field guided by the mesh's depth) at the same pose: what the agents actually saw in
the campaign.

Policy sensitivity asks whether an image policy acts differently on a real frame than on the
rendering at the same pose: the mean L2 distance between its actions on the two, beside a
reference scale, the distance between its actions on renderings of *different* poses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eval.errors import EvalError


@dataclass(frozen=True)
class FidelityConfig:
    frames: int = 4  # held-out frames to render (0: all of them), spread evenly over the capture
    width: int = 136  # rendering width in pixels; height keeps the camera's aspect ratio
    # Every n-th frame is held out; None: the rule the field was trained with (``held_out_rule``).
    holdout_every: int | None = None


@dataclass
class FrameComparison:
    """One held-out frame: the real image and a rendering per preset, with their scores."""

    index: int
    real: np.ndarray  # (H, W, 3) float32 in [0, 1]
    rendered: dict[str, np.ndarray] = field(default_factory=dict)
    psnr: dict[str, float] = field(default_factory=dict)
    ssim: dict[str, float] = field(default_factory=dict)


@dataclass
class FidelityResult:
    frames: list[FrameComparison]
    width: int
    height: int
    holdout_every: int

    def preset_scores(self) -> dict[str, dict[str, float]]:
        presets = list(self.frames[0].rendered) if self.frames else []
        scores = {}
        for preset in presets:
            psnr = np.array([f.psnr[preset] for f in self.frames])
            ssim = np.array([f.ssim[preset] for f in self.frames])
            scores[preset] = {
                "psnr": float(psnr.mean()),
                "psnr_std": float(psnr.std()),
                "ssim": float(ssim.mean()),
                "ssim_std": float(ssim.std()),
            }
        return scores

    def to_json(self) -> dict[str, Any]:
        return {
            "frame_indices": [f.index for f in self.frames],
            "width": self.width,
            "height": self.height,
            "holdout_every": self.holdout_every,
            "presets": self.preset_scores(),
            "per_frame": [{"index": f.index, "psnr": f.psnr, "ssim": f.ssim} for f in self.frames],
        }


def held_out_rule(view) -> int:
    """The field's own hold-out rule: every n-th frame of its dataset was kept out of training.

    Read from what training stored: ``holdout_every`` in ``field.json`` (the embedded backend),
    or the data parser's ``eval_interval`` in nerfstudio's ``config.yml``. A view that is not a
    field itself (the simulator's camera) answers with ``holdout_every`` of its scene's field.
    Scoring with any other rule would score frames the field was trained on.
    """
    rule = getattr(view, "holdout_every", None)
    meta = getattr(view, "meta", None) or {}
    if rule is None:
        rule = meta.get("holdout_every")
    if rule is None and meta.get("backend") == "nerfstudio":
        rule = _nerfstudio_holdout(Path(view.root) / meta.get("config", ""))
    if rule is None:
        raise EvalError(
            f"{getattr(view, 'root', type(view).__name__)}: the field does not record which "
            "frames it held out (no 'holdout_every' in field.json); give FidelityConfig.holdout_every"
        )
    return int(rule)


def _nerfstudio_holdout(config_path: Path) -> int | None:
    """nerfstudio's interval hold-out from its config.yml (read as text: no YAML object loading)."""
    try:
        text = config_path.read_text()
    except OSError:
        return None
    mode = re.search(r"^\s*eval_mode:\s*(\S+)", text, re.MULTILINE)
    interval = re.search(r"^\s*eval_interval:\s*(\d+)", text, re.MULTILINE)
    if mode is None or mode.group(1).strip("'\"") != "interval" or interval is None:
        return None
    return int(interval.group(1))


def choose_held_out(count: int, frames: int, holdout_every: int) -> list[int]:
    """``frames`` held-out indices spread evenly over the capture (all of them if 0)."""
    from scene_builder.datasets import split_indices

    _, held_out = split_indices(count, holdout_every)
    if frames <= 0 or frames >= len(held_out):
        return [int(i) for i in held_out]
    picks = np.linspace(0, len(held_out) - 1, frames).round().astype(int)
    return [int(held_out[i]) for i in picks]


def load_real_frame(frame, camera) -> np.ndarray:
    """The real image of ``frame`` at ``camera``'s (reduced) size, undistorted, float RGB."""
    import cv2

    image = cv2.imread(str(frame.image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise EvalError(f"{frame.image_path}: cannot read this image")
    full = frame.camera
    if full.has_distortion:
        coefficients = np.array([full.k1, full.k2, full.p1, full.p2])
        image = cv2.undistort(image, full.K, coefficients)
    image = cv2.resize(image, (camera.width, camera.height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def compare(real: np.ndarray, rendered: np.ndarray) -> tuple[float, float]:
    """PSNR (dB) and SSIM of ``rendered`` against ``real`` (float RGB in [0, 1])."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rendered = np.clip(rendered, 0.0, 1.0).astype(np.float32)
    mse = float(np.mean((real - rendered) ** 2))
    psnr = 100.0 if mse == 0 else float(peak_signal_noise_ratio(real, rendered, data_range=1.0))
    ssim = float(structural_similarity(real, rendered, channel_axis=2, data_range=1.0))
    return psnr, ssim


def measure_fidelity(
    radiance_field,
    dataset,
    presets: Sequence[str],
    config: FidelityConfig | None = None,
) -> FidelityResult:
    """Render the held-out frames of ``dataset`` (a PosedDataset or its folder) under ``presets``."""
    from scene_builder.datasets import PosedDataset, load_dataset

    config = config or FidelityConfig()
    if not isinstance(dataset, PosedDataset):
        dataset = load_dataset(Path(dataset))
    if not presets:
        raise EvalError("no lighting presets to render")
    holdout_every = config.holdout_every
    if holdout_every is None:
        holdout_every = held_out_rule(radiance_field)
    if holdout_every <= 0:
        raise EvalError(
            f"{dataset.root}: the field was trained on every frame (holdout_every "
            f"{holdout_every}): no held-out frame to score it on"
        )
    indices = choose_held_out(len(dataset), config.frames, holdout_every)
    comparisons = []
    width = height = 0
    for index in indices:
        frame = dataset.frames[index]
        camera = frame.camera.scaled(config.width / frame.camera.width)
        width, height = camera.width, camera.height
        comparison = FrameComparison(index, load_real_frame(frame, camera))
        intrinsics = np.array([camera.fx, camera.fy, camera.cx, camera.cy], dtype=np.float32)
        for preset in presets:
            output = radiance_field.render(
                frame.camera_to_world[None].astype(np.float32),
                intrinsics,
                width,
                height,
                appearance=preset,
            )
            rendered = np.asarray(output.rgb[0], dtype=np.float32)
            comparison.rendered[preset] = rendered
            comparison.psnr[preset], comparison.ssim[preset] = compare(comparison.real, rendered)
        comparisons.append(comparison)
    return FidelityResult(comparisons, width, height, holdout_every)


@dataclass(frozen=True)
class _Meta:
    """A field folder's metadata, where only its hold-out rule is needed."""

    root: Path
    meta: dict[str, Any]


class _Rendered:
    def __init__(self, rgb: np.ndarray):
        self.rgb = rgb


class SimulatorView:
    """The simulator's camera renderer (``baked``, ``mesh`` or ``field``) behind a field's render
    call.

    The held-out camera becomes a simulator ``CameraModel`` with the same horizontal field of
    view (its principal point at the image centre, as in the simulator) and the lighting preset
    an episode lighting, so the pixels are those an agent would get at that pose.
    """

    def __init__(self, scene, kind: str, field_mode: str = "guided"):
        self.scene, self.kind, self.field_mode = scene, kind, field_mode
        self.lighting_presets = dict(scene.lighting)
        self._renderers: dict[tuple, Any] = {}

    @property
    def holdout_every(self) -> int | None:
        """The hold-out rule of the scene's field (its geometry came from the same frames)."""
        if self.scene.field_dir is None:
            return None
        from scene_builder.fields.base import read_field_meta

        meta = read_field_meta(self.scene.field_dir)
        return held_out_rule(_Meta(Path(self.scene.field_dir), meta))

    def _renderer(self, width: int, height: int, fov_deg: float):
        from simulator.renderers import make_renderer
        from simulator.sensors import CameraModel

        key = (width, height, round(fov_deg, 3))
        if key not in self._renderers:
            camera = CameraModel(width, height, fov_deg, 0.0, 0.0, 0.0)
            far = 20.0 * float(self.scene.arena_size)  # misses: the background, far away
            self._renderers[key] = make_renderer(
                self.kind, self.scene, camera, far, self.field_mode
            )
        return self._renderers[key]

    def render(self, camera_to_world, intrinsics, width, height, appearance="capture"):
        from simulator.lighting import choose_lighting

        poses = np.asarray(camera_to_world, dtype=np.float32).reshape(-1, 4, 4)
        fx = float(np.asarray(intrinsics).reshape(-1)[0])
        fov_deg = float(np.degrees(2 * np.arctan(0.5 * width / fx)))
        lighting = choose_lighting(appearance, self.scene.lighting, np.random.default_rng(0))
        rgb, _ = self._renderer(width, height, fov_deg).render(poses, [lighting] * len(poses))
        return _Rendered(rgb)


def square_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centred square of ``image`` resized to ``size`` x ``size``, as uint8 (a policy's camera)."""
    import cv2

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    if crop.dtype != np.uint8:
        crop = (np.clip(crop, 0, 1) * 255 + 0.5).astype(np.uint8)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Sensitivity:
    """Mean action distance real-vs-rendered at the same pose, and across different poses."""

    same_pose: float
    across_poses: float
    frames: int

    @property
    def ratio(self) -> float | None:
        """same_pose / across_poses: near 0 = the rendering gap barely matters to the policy."""
        return self.same_pose / self.across_poses if self.across_poses > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {
            "same_pose": self.same_pose,
            "across_poses": self.across_poses,
            "frames": self.frames,
            "ratio": self.ratio,
        }


def policy_sensitivity(
    predict: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    template: Mapping[str, np.ndarray],
    real_images: Sequence[np.ndarray],
    rendered_images: Sequence[np.ndarray],
    image_size: int = 64,
) -> Sensitivity:
    """How much a policy's action changes when its camera image is real rather than rendered.

    ``template`` is an observation of the policy's environment; its "rgb" is replaced by each
    image (centre square at ``image_size``) and every other entry is kept, so only the pixels
    differ. Needs at least two frames (for the across-poses reference).
    """
    if len(real_images) != len(rendered_images) or len(real_images) < 2:
        raise EvalError("policy sensitivity needs at least two pairs of real and rendered frames")
    if "rgb" not in template:
        raise EvalError("policy sensitivity needs an image policy (its observation has no 'rgb')")

    def act(image: np.ndarray) -> np.ndarray:
        observation = {**template, "rgb": square_crop(image, image_size)}
        return np.asarray(predict(observation), dtype=np.float64).reshape(-1)

    real_actions = np.stack([act(image) for image in real_images])
    rendered_actions = np.stack([act(image) for image in rendered_images])
    same = np.linalg.norm(real_actions - rendered_actions, axis=1).mean()
    across = np.linalg.norm(rendered_actions - np.roll(rendered_actions, 1, axis=0), axis=1).mean()
    return Sensitivity(float(same), float(across), len(real_images))
