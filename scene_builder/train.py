"""Training the embedded radiance field on a posed dataset (``driveenv train-field``).

Every ``holdout_every``-th frame (8 by default, ``split_indices``) is held out and never trained
on; field.json records the rule, so the fidelity evaluation scores exactly those frames. The run
is a fixed number of steps (``steps``; with ``max_minutes`` the step count is planned from the
speed of the first steps and recorded, so a resumed run follows the same schedule). The state (model,
optimiser, random generator, step) is checkpointed atomically; ``resume`` continues from it
and, with the same steps, ends at the same field as an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from common.atomic import atomic_path, write_json_atomic
from common.config_cli import option
from common.threads import torch_threads
from scene_builder.datasets import PosedDataset, load_dataset, split_indices
from scene_builder.errors import FieldError
from scene_builder.fields.base import FIELD_FILE, FIELD_FORMAT_VERSION
from scene_builder.fields.embedded import EmbeddedConfig, EmbeddedField
from scene_builder.fields.evaluate import fit_code, mean_code, psnr, render_rays
from scene_builder.fields.lighting import PRESETS, apply_photometric, random_photometric
from scene_builder.fields.rays import camera_rays, estimate_bounds

STATE_FILE = "train_state.pt"
CHECKPOINT_FILE = "field.pt"


@dataclass
class TrainConfig:
    """Options of one training run (the CLI's flags)."""

    downscale: int = option(4, "train on the images divided by this", flag="field-downscale")
    steps: int | None = option(3000, "training steps", flag="field-steps")
    max_minutes: float | None = option(
        None, "train for about this many minutes instead of --field-steps", flag="field-minutes"
    )
    batch_rays: int = option(8192, "rays per step")
    lr_grid: float = option(0.2, "learning rate of the density and colour grids")
    lr_network: float = option(0.01, "learning rate of the colour decoder")
    lr_codes: float = option(0.01, "learning rate of the per-image appearance codes")
    lr_final_fraction: float = option(0.1, "learning rates decay to this fraction by the end")
    tv_weight: float = option(0.05, "weight of the grids' total-variation loss")
    upsample_fractions: tuple[float, ...] = option(
        (0.1, 0.2, 0.35), "fractions of training at which the grid is upsampled"
    )
    proxy_every: int = option(16, "steps between updates of the occupancy proxy")
    holdout_every: int = option(8, "hold out every K-th frame for evaluation")
    lighting_augmentation: bool = option(
        False, "also train every image under a random exposure/white-balance/gamma change"
    )
    scene_mode: str = option(
        "auto",
        "bounded box, or contraction of everything beyond the cameras' region (unbounded)",
        choices=("auto", "bounded", "unbounded"),
    )
    seed: int = option(0, "seed of ray sampling and initialisation")
    eval_every: int = option(100, "steps between held-out evaluations")
    checkpoint_seconds: float = option(60.0, "seconds between checkpoints (for --resume)")
    field: EmbeddedConfig = field(default_factory=EmbeddedConfig)

    def __post_init__(self) -> None:
        if self.downscale < 1:
            raise FieldError(f"--field-downscale {self.downscale}: must be 1 or more")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["field"] = self.field.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "field"}
        known["upsample_fractions"] = tuple(known.get("upsample_fractions", ()))
        return cls(**known, field=EmbeddedConfig.from_json(data.get("field", {})))


@dataclass
class TrainingImages:
    """The training frames in memory at the training resolution."""

    rgb: torch.Tensor  # (N, H, W, 3) uint8
    poses: torch.Tensor  # (N, 4, 4)
    intrinsics: torch.Tensor  # (N, 4) fx, fy, cx, cy at this resolution
    distortion: torch.Tensor | None  # (N, 4) or None when no frame has distortion
    frame_indices: np.ndarray  # indices into the dataset's frames

    @property
    def count(self) -> int:
        return self.rgb.shape[0]

    def rays(
        self, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat pixel indices -> (origins, directions, target rgb in [0,1], image index)."""
        _, height, width, _ = self.rgb.shape
        image = index // (height * width)
        pixel = index % (height * width)
        u = (pixel % width).float() + 0.5
        v = (pixel // width).float() + 0.5
        distortion = None if self.distortion is None else self.distortion[image]
        origins, directions = camera_rays(
            self.poses[image], self.intrinsics[image], u, v, distortion
        )
        target = self.rgb.reshape(-1, 3)[index].float() / 255.0
        return origins, directions, target, image


def load_images(dataset: PosedDataset, indices: np.ndarray, downscale: int) -> TrainingImages:
    """Read and resize the frames ``indices`` (INTER_AREA); FieldError for unreadable or mixed sizes."""
    if downscale < 1:
        raise FieldError(f"--downscale {downscale}: must be 1 or more")
    images, poses, intrinsics, distortion = [], [], [], []
    size = None
    for index in indices:
        frame = dataset.frames[int(index)]
        camera = frame.camera.scaled(1.0 / downscale)
        if size is None:
            size = (camera.width, camera.height)
        elif size != (camera.width, camera.height):
            raise FieldError(
                f"{frame.image_path}: all frames must have the same size to train a field"
            )
        pixels = cv2.imread(str(frame.image_path), cv2.IMREAD_COLOR)
        if pixels is None:
            raise FieldError(f"{frame.image_path}: not a readable image")
        if pixels.shape[1] != camera.width or pixels.shape[0] != camera.height:
            pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        images.append(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))
        poses.append(frame.camera_to_world)
        intrinsics.append([camera.fx, camera.fy, camera.cx, camera.cy])
        distortion.append([camera.k1, camera.k2, camera.p1, camera.p2])
    distortion_tensor = torch.tensor(np.array(distortion), dtype=torch.float32)
    return TrainingImages(
        rgb=torch.from_numpy(np.stack(images)),
        poses=torch.tensor(np.array(poses), dtype=torch.float32),
        intrinsics=torch.tensor(np.array(intrinsics), dtype=torch.float32),
        distortion=distortion_tensor if distortion_tensor.abs().sum() > 0 else None,
        frame_indices=np.asarray(indices),
    )


class Trainer:
    """One training run: model, optimiser, data, schedule; ``run`` drives it to the end."""

    def __init__(self, dataset_dir: str | Path, out_dir: str | Path, config: TrainConfig):
        self.dataset = load_dataset(dataset_dir)
        self.out_dir = Path(out_dir)
        self.config = config
        train_idx, holdout_idx = split_indices(len(self.dataset), config.holdout_every)
        if len(train_idx) == 0:
            raise FieldError(
                f"{self.dataset.root}: no training frames left after holding out every {config.holdout_every}th"
            )
        self.train = load_images(self.dataset, train_idx, config.downscale)
        self.holdout = (
            load_images(self.dataset, holdout_idx, config.downscale) if len(holdout_idx) else None
        )
        self.bounds = estimate_bounds(self.dataset.poses, config.scene_mode)
        self.generator = torch.Generator().manual_seed(config.seed)
        augmented = 2 if config.lighting_augmentation else 1
        self.model = EmbeddedField(
            config.field, self.bounds, self.train.count * augmented, seed=config.seed
        )
        self.augment_gain, self.augment_gamma = random_photometric(
            self.train.count, torch.Generator().manual_seed(config.seed + 1)
        )
        self.step = 0
        self.planned_steps = config.steps
        self.elapsed = 0.0
        self.optimizer = self._make_optimizer()
        self._holdout_probe = self._make_holdout_probe()

    # ------------------------------------------------------------ schedule
    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        factor = self._lr_factor()
        groups = [
            {
                "params": [self.model.planes, self.model.lines],
                "lr": c.lr_grid * factor,
                "base": c.lr_grid,
            },
            {
                "params": [
                    *self.model.feature_layer.parameters(),
                    *self.model.ray_layer.parameters(),
                    *self.model.output_layer.parameters(),
                    *(
                        self.model.photometric_layer.parameters()
                        if self.model.photometric_layer is not None
                        else ()
                    ),
                    self.model.background,
                    self.model.sky,
                ],
                "lr": c.lr_network * factor,
                "base": c.lr_network,
            },
            {"params": [self.model.codes], "lr": c.lr_codes * factor, "base": c.lr_codes},
        ]
        # fused: one pass over each parameter instead of a dozen elementwise kernels (the
        # feature planes hold millions of numbers, so the optimiser step is a visible share).
        return torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15, fused=True)

    def _lr_factor(self) -> float:
        total = max(self.planned_steps or 1, 1)
        return self.config.lr_final_fraction ** min(self.step / total, 1.0)

    def _resolution_at(self, step: int) -> int:
        """Coarse-to-fine: the resolution grows geometrically at the upsample fractions."""
        c = self.config.field
        fractions = self.config.upsample_fractions
        total = max(self.planned_steps or 1, 1)
        passed = sum(step >= round(f * total) for f in fractions)
        if not fractions:
            return c.resolution
        ratio = (c.resolution / c.initial_resolution) ** (passed / len(fractions))
        return int(round(c.initial_resolution * ratio))

    def _make_holdout_probe(self):
        """A fixed set of held-out pixels for the PSNR shown while training."""
        if self.holdout is None:
            return None
        total = self.holdout.rgb.shape[0] * self.holdout.rgb.shape[1] * self.holdout.rgb.shape[2]
        probe = torch.randperm(total, generator=torch.Generator().manual_seed(12345))[:4096]
        return self.holdout.rays(probe)[:3]

    # --------------------------------------------------------------- steps
    def train_step(self) -> float:
        c = self.config
        model = self.model
        total = self.train.rgb.shape[0] * self.train.rgb.shape[1] * self.train.rgb.shape[2]
        index = torch.randint(0, total, (c.batch_rays,), generator=self.generator)
        origins, directions, target, image = self.train.rays(index)
        code_index = image
        if c.lighting_augmentation:
            flip = torch.rand(c.batch_rays, generator=self.generator) < 0.5
            changed = apply_photometric(target, self.augment_gain[image], self.augment_gamma[image])
            target = torch.where(flip[:, None], changed, target)
            code_index = image + flip.long() * self.train.count
        t, delta = model.sample_intervals(
            origins, directions, c.field.coarse_samples, c.field.fine_samples, self.generator
        )
        rgb, _, _ = model.composite(origins, directions, t, delta, model.codes[code_index])
        loss = torch.mean((rgb - target) ** 2)
        total_loss = loss + c.tv_weight * model.total_variation()
        self.optimizer.zero_grad(set_to_none=True)
        total_loss.backward()
        self.optimizer.step()
        self.step += 1
        self._after_step()
        return float(loss.detach())

    def _after_step(self) -> None:
        resolution = self._resolution_at(self.step)
        if resolution != self.model.resolution:
            self.model.upsample(resolution)
            self.optimizer = self._make_optimizer()
        else:
            factor = self._lr_factor()
            for group in self.optimizer.param_groups:
                group["lr"] = group["base"] * factor
        if self.step % self.config.proxy_every == 0:
            self.model.refresh_proxy()

    def holdout_psnr(self) -> float:
        """PSNR on the fixed held-out probe pixels with the mean training code."""
        if self._holdout_probe is None:
            return float("nan")
        origins, directions, target = self._holdout_probe
        code = mean_code(self.model, self.train.count)
        with torch.no_grad():
            rgb = render_rays(self.model, origins, directions, code)
        return psnr(rgb, target)

    # ----------------------------------------------------------- checkpoint
    def save_state(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "step": self.step,
            "planned_steps": self.planned_steps,
            "elapsed": self.elapsed,
            "config": self.config.to_json(),
            "bounds": self.bounds.to_json(),
        }
        with atomic_path(self.out_dir / STATE_FILE) as tmp:
            torch.save(state, tmp)

    def load_state(self) -> None:
        path = self.out_dir / STATE_FILE
        state = _read_state(path)
        try:
            self.planned_steps = int(state["planned_steps"])
            self.model.upsample(state["model"]["planes"].shape[-1])
            self.model.load_state_dict(state["model"])
            self.step = int(state["step"])
            self.elapsed = float(state["elapsed"])
            self.optimizer = self._make_optimizer()
            self.optimizer.load_state_dict(state["optimizer"])
            self.generator.set_state(state["generator"])
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise FieldError(
                f"{path}: training state does not match this run ({type(error).__name__}: "
                f"{str(error).splitlines()[0][:100]})"
            ) from None

    def write_field(self, fit_presets: bool) -> None:
        """Write field.pt and field.json (all presets when ``fit_presets``, else capture only)."""
        capture = mean_code(self.model, self.train.count)
        presets = {"capture": capture.tolist()}
        if fit_presets:
            presets.update(self.fit_presets(capture))
        with atomic_path(self.out_dir / CHECKPOINT_FILE) as tmp:
            torch.save(self.model.state_dict(), tmp)
        meta = {
            "format_version": FIELD_FORMAT_VERSION,
            "backend": "embedded",
            "checkpoint": CHECKPOINT_FILE,
            "complete": self.step >= (self.planned_steps or 0),
            "step": self.step,
            "dataset": str(self.dataset.root),
            "downscale": self.config.downscale,
            "holdout_every": self.config.holdout_every,
            "num_codes": self.model.codes.shape[0],
            "config": self.config.field.to_json(),
            "train_config": self.config.to_json(),
            "bounds": self.bounds.to_json(),
            "presets": presets,
            "preset_photometric": {name: preset.to_json() for name, preset in PRESETS.items()},
            "holdout_psnr": self.holdout_psnr(),
        }
        write_json_atomic(self.out_dir / FIELD_FILE, meta)

    def fit_presets(self, capture: torch.Tensor) -> dict[str, list[float]]:
        """Fit each named preset's code to its photometric change of the capture rendering."""
        index = torch.randperm(
            self.train.rgb[..., 0].numel(), generator=torch.Generator().manual_seed(7)
        )[:1024]
        origins, directions, _, _ = self.train.rays(index)
        with torch.no_grad():
            base = render_rays(self.model, origins, directions, capture)
        presets = {}
        for name, change in PRESETS.items():
            if name == "capture":
                continue
            code = fit_code(self.model, origins, directions, change.apply(base), capture)
            presets[name] = code.tolist()
        return presets

    # ------------------------------------------------------------------ run
    def run(
        self,
        on_status: Callable[[Trainer, float, float], None] | None = None,
        callback: Callable[[Trainer], None] | None = None,
    ) -> None:
        """Train to ``planned_steps`` (or until ``max_minutes`` of this session), checkpointing.

        ``on_status(trainer, rays_per_second, holdout_psnr)`` is called every ``eval_every`` steps;
        ``callback(trainer)`` after every step (its time is not counted as training time).
        """
        c = self.config
        session_start = self.elapsed
        if self.step == 0:
            self.model.refresh_proxy()
        if self.planned_steps is None:
            self._plan_steps(callback)
        last_checkpoint = time.perf_counter()
        rays_per_second = float("nan")
        window_start, window_steps = time.perf_counter(), 0
        threads = torch.get_num_threads()
        while self.step < self.planned_steps:
            tick = time.perf_counter()
            with torch_threads(threads):  # fewer while other processes keep cores busy
                self.train_step()
            self.elapsed += time.perf_counter() - tick
            window_steps += 1
            if callback is not None:
                callback(self)
            if self.step % c.eval_every == 0 or self.step == self.planned_steps:
                now = time.perf_counter()
                rays_per_second = window_steps * c.batch_rays / max(now - window_start, 1e-9)
                if on_status is not None:
                    on_status(self, rays_per_second, self.holdout_psnr())
                window_start, window_steps = time.perf_counter(), 0
            if time.perf_counter() - last_checkpoint > c.checkpoint_seconds:
                self.save_state()
                self.write_field(fit_presets=False)
                last_checkpoint = time.perf_counter()
            if c.max_minutes is not None and self.elapsed - session_start > 60 * c.max_minutes:
                break
        self.save_state()
        self.write_field(fit_presets=True)

    def _plan_steps(self, callback) -> None:
        """With only a time limit: time 20 steps, then fix the step count that fits it."""
        tick = time.perf_counter()
        self.planned_steps = 10**9  # keep the schedule at its start while timing
        for _ in range(20):
            self.train_step()
            if callback is not None:
                callback(self)
        seconds_per_step = (time.perf_counter() - tick) / 20
        self.elapsed += time.perf_counter() - tick
        # Later steps run on finer grids (a larger optimiser update): plan 15% fewer.
        self.planned_steps = max(int(0.85 * 60 * self.config.max_minutes / seconds_per_step), 21)


def _read_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FieldError(f"{path}: no training state to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise FieldError(f"{path}: corrupt training state ({type(error).__name__})") from None
    if not isinstance(state, dict) or "config" not in state:
        raise FieldError(f"{path}: corrupt training state (not a DriveEnv training state)")
    return state


def train_field(
    dataset_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    on_status=None,
    callback=None,
) -> Trainer:
    """Train (or resume) a field from ``dataset_dir`` into ``out_dir``; returns the trainer."""
    out = Path(out_dir)
    if resume and not (out / STATE_FILE).is_file():
        raise FieldError(f"{out / STATE_FILE}: no training state to resume from")
    if not resume and not overwrite and (out / FIELD_FILE).exists():
        raise FieldError(f"{out}: already holds a field (use --resume to continue or --overwrite)")
    if resume:
        max_minutes = config.max_minutes
        config = TrainConfig.from_json(_read_state(out / STATE_FILE)["config"])
        config.max_minutes = max_minutes
    torch.manual_seed(config.seed)
    trainer = Trainer(dataset_dir, out, config)
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        trainer.load_state()
    trainer.run(on_status=on_status, callback=callback)
    return trainer
