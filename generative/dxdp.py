"""Diffusion by dynamic programming (DxDP, Yoon et al. 2024): a few-step sampler as an MDP policy.

A T-step sampler is a policy over the chain x_0 (Gaussian noise) -> x_1 -> ... -> x_T (a sample);
each step is a Gaussian ``pi_i(x_{i+1} | x_i) = N(mu_i(x_i), sigma_i^2 I)`` whose mean is a DDIM
step of a pretrained noise-prediction network and whose noise ``sigma_i`` is learned. The sampler
should minimise ``E[E(x_T)] - H`` for an energy E (the reward is -E); the marginal entropy of x_T
is intractable, so DxDP bounds it with the chain's entropy and an auxiliary backward kernel
``q~(x_i | x_{i+1}) = N(x_{i+1}, s_i^2 I)``. The objective then splits into per-step costs

    c_i = tau * (log pi_i(x_{i+1} | x_i) - log q~(x_i | x_{i+1})),   terminal cost E(x_T),

and dynamic programming applies: values ``V_i(x_i) = E[c_i + V_{i+1}(x_{i+1})]`` with
``V_T = E`` are learned by temporal differences, and each step's policy is improved through
its own one-step look-ahead ``c_i + V_{i+1}(x_{i+1})`` (reparameterised), never by
back-propagating through the whole chain. ``s_i^2`` takes its optimal value, the mean squared
step length per dimension (the paper's adaptive velocity regularisation), tracked by a running
average. The log-density of a reparameterised Gaussian step is ``-D log sigma_i`` up to a
constant, which is where the entropy bonus enters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from generative.diffusion import NoiseSchedule, ddim_timesteps
from generative.errors import GenerativeError
from generative.networks import SinusoidalEmbedding


def sampler_timesteps(num_train_steps: int, num_steps: int) -> list[int]:
    """``num_steps`` start timesteps, the last step starting well above t = 0.

    DDIM's grid ends at t = 0, which spends one of a few steps on an almost noiseless
    correction; here the grid of ``num_steps + 1`` points ends at the data itself, so
    every step removes a comparable share of the noise.
    """
    if not 1 <= num_steps < num_train_steps:
        raise GenerativeError(
            f"sampler steps must be in [1, {num_train_steps - 1}], got {num_steps}"
        )
    return ddim_timesteps(num_train_steps, num_steps + 1)[:-1]


class FewStepSampler(nn.Module):
    """T generalised-DDIM steps of a noise-prediction ``denoiser`` with learnable noise per step.

    Step i runs at the pretrained schedule's timestep ``timesteps[i]``; with ``sigma_i = 0`` it
    is plain DDIM, with the DDPM posterior's sigma it is DDPM-like ancestral sampling. The last
    step lands on the data (alpha_bar = 1) and adds ``sigma_T`` of noise, which keeps the
    sample's density, and so its entropy, finite.
    """

    def __init__(
        self,
        denoiser: nn.Module,
        schedule: NoiseSchedule,
        num_steps: int,
        eta: float = 0.5,
        last_sigma: float = 0.02,
        clip: float | None = None,
    ) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.timesteps = sampler_timesteps(schedule.num_steps, num_steps)
        self.clip = clip
        ab = schedule.alpha_bars
        self.register_buffer("ab_now", ab[self.timesteps].clone())
        self.register_buffer("ab_next", torch.cat([ab[self.timesteps[1:]], torch.ones(1)]))
        ddpm = ((1 - self.ab_next) / (1 - self.ab_now) * (1 - self.ab_now / self.ab_next)).sqrt()
        sigma = torch.cat([eta * ddpm[:-1], torch.tensor([last_sigma])]).clamp(min=1e-3)
        self.log_sigma = nn.Parameter(sigma.log())

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def sigmas(self) -> torch.Tensor:
        """The noise of each step, capped below the DDIM direction's size."""
        cap = (1 - self.ab_next).clamp(min=0).sqrt()
        cap = torch.where(self.ab_next < 1, 0.999 * cap, torch.full_like(cap, 1.0))
        return torch.minimum(self.log_sigma.exp(), cap)

    def mean(
        self, x: torch.Tensor, i: int, sigmas: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The Gaussian step's mean: a DDIM step with the direction shortened by sigma_i.

        ``sigmas`` is this module's ``sigmas()``, computed once per chain by the caller: it is
        several small tensor operations, as costly as a step of a small denoiser.
        """
        t = torch.full((x.shape[0],), self.timesteps[i], dtype=torch.long, device=x.device)
        eps = self.denoiser(x, t, cond)
        ab_t, ab_prev = self.ab_now[i], self.ab_next[i]
        x0 = (x - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
        if self.clip is not None:
            x0 = x0.clamp(-self.clip, self.clip)
            eps = (x - ab_t.sqrt() * x0) / (1 - ab_t).sqrt()
        direction = (1 - ab_prev - sigmas[i] ** 2).clamp(min=0).sqrt()
        return ab_prev.sqrt() * x0 + direction * eps

    def step(
        self,
        x: torch.Tensor,
        i: int,
        noise: torch.Tensor,
        sigmas: torch.Tensor,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.mean(x, i, sigmas, cond) + sigmas[i] * noise

    def rollout(
        self,
        shape: tuple[int, ...],
        cond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """States x_0..x_T and the step noises eps_0..eps_{T-1}, without gradients."""
        with torch.no_grad():
            sigmas = self.sigmas()
            states = [torch.randn(shape, generator=generator)]
            noises = []
            for i in range(self.num_steps):
                noises.append(torch.randn(shape, generator=generator))
                states.append(self.step(states[-1], i, noises[-1], sigmas, cond))
        return states, noises

    @torch.no_grad()
    def sample(
        self,
        shape: tuple[int, ...],
        cond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        return self.rollout(shape, cond, generator)[0][-1]


class StepValue(nn.Module):
    """V_i(x_i, cond) for the sampler's steps i = 0..T-1: an MLP on [x, step embedding, cond]."""

    def __init__(self, data_dim: int, cond_dim: int = 0, hidden: int = 128, depth: int = 2):
        super().__init__()
        self.cond_dim = cond_dim
        self.embed = SinusoidalEmbedding(32)
        layers: list[nn.Module] = [nn.Linear(data_dim + 32 + cond_dim, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, i: int, cond: torch.Tensor | None = None) -> torch.Tensor:
        step = torch.full((x.shape[0],), float(i), device=x.device)
        parts = [x.reshape(x.shape[0], -1), self.embed(step)]
        if self.cond_dim:
            parts.append(cond)
        return self.net(torch.cat(parts, dim=-1)).squeeze(-1)


@dataclass(frozen=True)
class DxDPConfig:
    entropy_weight: float = 0.1  # tau: the entropy bonus (and velocity cost) per unit of energy
    velocity_decay: float = 0.99  # running average of the squared step length (AVR's s_i^2)


class DxDP:
    """Temporal-difference values over sampler steps and the one-step-look-ahead policy update.

    ``terminal(x, cond)`` is the energy E at the chain's end (the negative reward).
    """

    def __init__(self, sampler: FewStepSampler, value: StepValue, config: DxDPConfig) -> None:
        self.sampler, self.value, self.config = sampler, value, config
        self.velocity = torch.full((sampler.num_steps,), math.nan)

    def _update_velocity(self, states: list[torch.Tensor]) -> None:
        for i in range(self.sampler.num_steps):
            delta = states[i + 1] - states[i]
            squared = float((delta**2).mean())
            old = self.velocity[i]
            decay = self.config.velocity_decay
            self.velocity[i] = squared if math.isnan(old) else decay * old + (1 - decay) * squared

    def _velocity_cost(self, x: torch.Tensor, x_next: torch.Tensor, i: int) -> torch.Tensor:
        """-log q~(x_i | x_{i+1}) up to a constant, per sample: ||step||^2 / (2 s_i^2)."""
        squared = ((x_next - x) ** 2).reshape(x.shape[0], -1).sum(-1)
        return squared / (2 * self.velocity[i].clamp(min=1e-8))

    def value_loss(self, states, cond, terminal) -> torch.Tensor:
        """Squared TD error of V_i towards tau * c_i + V_{i+1}(x_{i+1}), with V_T = E."""
        tau = self.config.entropy_weight
        self._update_velocity(states)
        total = torch.zeros(())
        last = self.sampler.num_steps - 1
        with torch.no_grad():
            targets = []
            for i in range(self.sampler.num_steps):
                nxt = states[i + 1]
                ahead = terminal(nxt, cond) if i == last else self.value(nxt, i + 1, cond)
                targets.append(tau * self._velocity_cost(states[i], nxt, i) + ahead)
        for i, target in enumerate(targets):
            total = total + ((self.value(states[i], i, cond) - target) ** 2).mean()
        return total / self.sampler.num_steps

    def policy_loss(self, states, cond, terminal, generator=None) -> torch.Tensor:
        """Per step: E[V_{i+1}(x_{i+1}) + tau * (||step||^2 / 2 s_i^2 - D log sigma_i)]."""
        tau = self.config.entropy_weight
        sigmas = self.sampler.sigmas()
        last = self.sampler.num_steps - 1
        total = torch.zeros(())
        for i in range(self.sampler.num_steps):
            x = states[i].detach()
            noise = torch.randn(x.shape, generator=generator)
            nxt = self.sampler.step(x, i, noise, sigmas, cond)
            ahead = terminal(nxt, cond) if i == last else self.value(nxt, i + 1, cond)
            dim = x[0].numel()
            log_density = -dim * torch.log(sigmas[i])
            cost = self._velocity_cost(x, nxt, i) + log_density
            total = total + (ahead + tau * cost).mean()
        return total
