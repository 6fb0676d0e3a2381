"""Denoising diffusion: noise schedules, the epsilon-prediction loss, DDPM and DDIM samplers.

Written here rather than taken from ``diffusers`` because the whole of it is a hundred lines of
tensor algebra, and the agents need exact control over timesteps, conditioning and generators
(seeded sampling, few-step DDIM in a control loop) without a heavy dependency.

Conventions: integer timesteps t in [0, T-1]; ``alpha_bar[t] = prod_{s<=t} (1 - beta_s)``;
x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps. A denoiser is any callable
``model(x_t, t, cond) -> eps_hat`` with x_t of shape (B, ...), t a long tensor (B,) and cond a
(B, C) tensor or None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from generative.errors import GenerativeError

Denoiser = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]

SCHEDULES = ("linear", "cosine", "vp")


@dataclass(frozen=True)
class ScheduleConfig:
    kind: str = "cosine"
    num_steps: int = 100
    beta_start: float = 1e-4  # linear schedule, given for T = 1000 and rescaled to num_steps
    beta_end: float = 0.02
    cosine_offset: float = 0.008  # Nichol & Dhariwal's s
    vp_beta_min: float = 0.1  # "vp": the variance-preserving SDE's beta(t), discretised
    vp_beta_max: float = 10.0


class NoiseSchedule:
    """The betas and cumulative alphas of a discrete-time diffusion."""

    def __init__(self, config: ScheduleConfig | None = None) -> None:
        config = config or ScheduleConfig()
        if config.kind not in SCHEDULES:
            raise GenerativeError(f"unknown noise schedule {config.kind!r}; use one of {SCHEDULES}")
        if config.num_steps < 1:
            raise GenerativeError(f"num_steps must be at least 1, got {config.num_steps}")
        self.config = config
        steps = config.num_steps
        if config.kind == "linear":
            scale = 1000.0 / steps
            betas = torch.linspace(
                scale * config.beta_start, scale * config.beta_end, steps, dtype=torch.float64
            ).clamp(max=0.999)
        elif config.kind == "vp":
            # Exact integral of a linear beta(t) over each of the T intervals: well spread noise
            # levels for any T, including the handful of steps of an RL actor.
            i = torch.arange(1, steps + 1, dtype=torch.float64)
            b_min, b_max = config.vp_beta_min, config.vp_beta_max
            betas = 1 - torch.exp(-b_min / steps - 0.5 * (b_max - b_min) * (2 * i - 1) / steps**2)
        else:
            s = config.cosine_offset
            grid = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
            f = torch.cos((grid + s) / (1 + s) * math.pi / 2) ** 2
            alpha_bar = f / f[0]
            betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
        self.betas = betas.float()
        self.alphas = (1 - betas).float()
        self.alpha_bars = torch.cumprod(1 - betas, dim=0).float()

    @property
    def num_steps(self) -> int:
        return self.config.num_steps

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bars.to(x0.device)[t].view(-1, *([1] * (x0.ndim - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """sqrt(1 - alpha_bar_t): the noise level; score = -eps / sigma."""
        return (1 - self.alpha_bars.to(t.device)[t]).sqrt()


def epsilon_loss(
    model: Denoiser,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    cond: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean squared error of the predicted noise at a uniformly drawn timestep (Ho et al. 2020)."""
    batch = x0.shape[0]
    t = torch.randint(0, schedule.num_steps, (batch,), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    x_t = schedule.add_noise(x0, noise, t)
    return torch.mean((model(x_t, t, cond) - noise) ** 2)


def _clip(x: torch.Tensor, clip: float | None) -> torch.Tensor:
    return x if clip is None else x.clamp(-clip, clip)


@torch.no_grad()
def ddpm_sample(
    model: Denoiser,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    cond: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    clip: float | None = None,
) -> torch.Tensor:
    """Ancestral sampling through all T steps (posterior variance beta_tilde)."""
    x = torch.randn(shape, generator=generator)
    ab = schedule.alpha_bars
    for step in reversed(range(schedule.num_steps)):
        t = torch.full((shape[0],), step, dtype=torch.long)
        eps = model(x, t, cond)
        ab_t = ab[step]
        ab_prev = ab[step - 1] if step > 0 else torch.tensor(1.0)
        x0 = _clip((x - (1 - ab_t).sqrt() * eps) / ab_t.sqrt(), clip)
        beta_t = schedule.betas[step]
        mean = (ab_prev.sqrt() * beta_t / (1 - ab_t)) * x0 + (
            schedule.alphas[step].sqrt() * (1 - ab_prev) / (1 - ab_t)
        ) * x
        if step > 0:
            var = beta_t * (1 - ab_prev) / (1 - ab_t)
            x = mean + var.sqrt() * torch.randn(shape, generator=generator)
        else:
            x = mean
    return x


def ddim_timesteps(num_train_steps: int, num_steps: int) -> list[int]:
    """``num_steps`` timesteps evenly spread over [0, T-1], descending, always ending at 0."""
    if not 1 <= num_steps <= num_train_steps:
        raise GenerativeError(f"DDIM steps must be in [1, {num_train_steps}], got {num_steps}")
    grid = torch.linspace(num_train_steps - 1, 0, num_steps).round().long().tolist()
    return list(dict.fromkeys(grid))


@torch.no_grad()
def ddim_sample(
    model: Denoiser,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    cond: torch.Tensor | None = None,
    num_steps: int = 10,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip: float | None = None,
    initial_noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """DDIM (Song et al. 2021) with any number of steps; ``eta`` = 0 is deterministic given the noise."""
    x = initial_noise if initial_noise is not None else torch.randn(shape, generator=generator)
    ab = schedule.alpha_bars
    steps = ddim_timesteps(schedule.num_steps, num_steps)
    for i, step in enumerate(steps):
        t = torch.full((x.shape[0],), step, dtype=torch.long)
        eps = model(x, t, cond)
        ab_t = ab[step]
        ab_prev = ab[steps[i + 1]] if i + 1 < len(steps) else torch.tensor(1.0)
        x0 = _clip((x - (1 - ab_t).sqrt() * eps) / ab_t.sqrt(), clip)
        if clip is not None:  # keep eps consistent with the clipped x0
            eps = (x - ab_t.sqrt() * x0) / (1 - ab_t).sqrt()
        sigma = eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).clamp(min=0).sqrt()
        direction = (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
        x = ab_prev.sqrt() * x0 + direction
        if eta > 0 and i + 1 < len(steps):
            x = x + sigma * torch.randn(x.shape, generator=generator)
    return x
