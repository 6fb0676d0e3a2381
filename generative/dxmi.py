"""DxMI (Yoon et al., NeurIPS 2024): maximum-entropy inverse RL of a few-step diffusion sampler.

Two models are trained together on a data tensor (any shape (N, ...), optionally with a
conditioning tensor (N, C)):

- an energy-based model q(x) ~ exp(-E(x)), pushed down on data and up on the sampler's samples
  (the contrastive-divergence gradient, with the sampler in place of MCMC) plus
  ``energy_reg * E^2`` to keep energies bounded. An addition to the paper: with weight
  ``perturbed_negatives``, data perturbed by Gaussian noise of a random scale in
  ``perturb_scale`` are negatives too. A sampler fine-tuned from a good diffusion model only
  ever lands near the data, so without them the energy is never told that the gaps between
  modes, or anything further off, are unlikely (the noise-contrastive idea of Gutmann and
  Hyvarinen, 2010, used as a coverage term). A second addition, for conditional data: with
  weight ``mismatched_negatives``, data paired with another row's condition are negatives (the
  matching-aware discriminator of Reed et al., 2016). Once the sampler's samples match the data
  under each condition, the contrastive term no longer says anything about the condition; an
  energy that then ignores it rewards the data's marginal, and a sampler fine-tuned on it stops
  reading its observation (a policy that keeps both detours' chunks after committing to one);
- a T-step sampler (``generative.dxdp.FewStepSampler``, fine-tuned from a pretrained DDPM's
  noise predictor) that minimises ``E[E(x_T)] - tau * H``: a maximum-entropy RL problem whose
  reward is the negative energy, solved by DxDP (per-step values learned by temporal
  differences, each step improved by its one-step look-ahead).

With ``smooth_reward`` the sampler's reward is a second energy on raw x, trained by the same
contrastive loss on the same batch, and the energy with Fourier features (``EnergyNet``) is only
the model of the data. A reward carved into narrow modes moves a few-step sampler in large
swings (mass jumps between modes from one hundred updates to the next), while a smooth one
moves it steadily; ranking data above everything else is what needs the narrow modes.

At the fixed point the sampler's distribution is the data's, and E is -tau log p(x) up to a
constant: an energy that ranks data above anything else without any MCMC. In imitation the
data are expert actions given an observation, and -E is an inverse-RL reward over
(observation, action) pairs.

``sliced_wasserstein`` and ``auroc`` are the two oracle measures of the tests and benchmarks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from generative.dxdp import DxDP, DxDPConfig, FewStepSampler, StepValue
from generative.errors import GenerativeError


class EnergyNet(nn.Module):
    """E(x, cond) = f(x, cond) + mean((x / base_scale)^2) / 2: an MLP over a Gaussian base.

    The base term (a Gaussian base density per dimension, averaged over dimensions so that its
    size does not grow with D) keeps exp(-E) normalisable: far from everything the sampler and
    the data ever visit, the MLP's extrapolation cannot make the energy fall without bound.

    With ``fourier_features`` > 0 the MLP also sees sin and cos of that many fixed random
    projections of x (std ``fourier_scale`` per data unit; Tancik et al. 2020). A plain MLP on
    raw coordinates learns smooth functions first (spectral bias) and takes many updates to
    carve an energy into narrow modes; the features make those modes reachable within a few
    hundred updates.
    """

    def __init__(
        self,
        data_dim: int,
        cond_dim: int = 0,
        hidden: int = 128,
        depth: int = 3,
        base_scale: float | None = 2.0,
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
    ):
        super().__init__()
        self.data_dim, self.cond_dim, self.base_scale = data_dim, cond_dim, base_scale
        projection = torch.randn(data_dim, fourier_features) * fourier_scale
        self.register_buffer("fourier", projection if fourier_features > 0 else None)
        width = data_dim + cond_dim + 2 * fourier_features
        layers: list[nn.Module] = [nn.Linear(width, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.data_dim:
            raise GenerativeError(
                f"energy expects {self.data_dim} values per sample, got {flat.shape[1]}"
            )
        parts = [flat]
        if self.fourier is not None:
            projected = flat @ self.fourier
            parts += [projected.sin(), projected.cos()]
        if self.cond_dim:
            if cond is None:
                raise GenerativeError("this energy is conditional: pass cond")
            parts.append(cond)
        energy = self.net(torch.cat(parts, dim=-1)).squeeze(-1)
        if self.base_scale:
            energy = energy + 0.5 * (flat / self.base_scale).pow(2).mean(-1)
        return energy


@dataclass(frozen=True)
class DxMIConfig:
    """Hyper-parameters of the joint training."""

    num_steps: int = 4  # T, the sampler's steps
    entropy_weight: float = 0.1  # tau
    energy_reg: float = 1.0  # coefficient of E^2 on data and samples
    eta: float = 0.5  # initial noise of each step, as a fraction of the DDPM posterior's
    last_sigma: float = 0.02  # initial noise of the final step
    sampler_lr: float = 1e-4
    noise_lr: float = 1e-2  # the per-step log sigmas
    energy_lr: float = 1e-3
    value_lr: float = 1e-3
    hidden: int = 128  # energy and value networks
    base_scale: float | None = 2.0  # the energy's Gaussian base, in data units (None: none)
    fourier_features: int = 0  # random Fourier features of x for the energy (0: raw x only)
    fourier_scale: float = 1.0  # their frequency std, per data unit
    batch_size: int = 256
    velocity_decay: float = 0.99
    adam_beta1: float = 0.5  # sampler and energy: less momentum damps their adversarial swings
    ema_decay: float | None = 0.99  # EMA of the sampler's weights, what ``sample`` draws from
    clip: float | None = None  # clamp of the predicted clean sample (1.0 for normalised actions)
    perturbed_negatives: float = 1.0  # weight of the noise-perturbed data negatives (0: none)
    perturb_scale: tuple[float, float] = (0.2, 1.0)  # their noise std range, in data units
    mismatched_negatives: float = 0.0  # weight of data paired with another row's cond (0: none)
    # True: the sampler's reward is a second energy on raw x (no Fourier features), trained by
    # the same contrastive loss; the Fourier-featured energy is then only the model of the data
    smooth_reward: bool = False

    def __post_init__(self) -> None:
        if self.num_steps < 1 or self.batch_size < 1:
            raise GenerativeError("num_steps and batch_size must be at least 1")
        weights = (
            self.entropy_weight,
            self.energy_reg,
            self.perturbed_negatives,
            self.mismatched_negatives,
        )
        if min(weights) < 0:
            raise GenerativeError(
                "entropy_weight, energy_reg, perturbed_negatives and mismatched_negatives "
                "must be non-negative"
            )


class DxMI:
    """The sampler, energy and values of one DxMI problem, with ``update`` and ``fit``."""

    def __init__(
        self,
        sampler: FewStepSampler,
        energy: nn.Module,
        value: StepValue,
        config: DxMIConfig | None = None,
        reward: nn.Module | None = None,
    ) -> None:
        self.config = config = config or DxMIConfig()
        self.sampler, self.energy, self.value = sampler, energy, value
        # the terminal cost the sampler and values see: the energy itself unless a second one
        self.reward = energy if reward is None else reward
        energies = [energy] if reward is None else [energy, reward]
        self.dxdp = DxDP(sampler, value, DxDPConfig(config.entropy_weight, config.velocity_decay))
        betas = (config.adam_beta1, 0.999)
        self.sampler_optimizer = torch.optim.Adam(
            [
                {"params": list(self.sampler.denoiser.parameters()), "lr": config.sampler_lr},
                {"params": [self.sampler.log_sigma], "lr": config.noise_lr},
            ],
            betas=betas,
        )
        self.energy_optimizer = torch.optim.Adam(
            [p for net in energies for p in net.parameters()], lr=config.energy_lr, betas=betas
        )
        self.ema_sampler = (
            None if config.ema_decay is None else copy.deepcopy(sampler).requires_grad_(False)
        )
        self.value_optimizer = torch.optim.Adam(self.value.parameters(), lr=config.value_lr)
        self.num_updates = 0

    @classmethod
    def from_denoiser(
        cls,
        denoiser: nn.Module,
        schedule,
        data_dim: int,
        cond_dim: int = 0,
        config: DxMIConfig | None = None,
    ) -> DxMI:
        """A problem around a pretrained noise predictor: new energy and value networks."""
        config = config or DxMIConfig()
        sampler = FewStepSampler(
            denoiser, schedule, config.num_steps, config.eta, config.last_sigma, config.clip
        )

        def energy(fourier_features: int) -> EnergyNet:
            return EnergyNet(
                data_dim,
                cond_dim,
                config.hidden,
                base_scale=config.base_scale,
                fourier_features=fourier_features,
                fourier_scale=config.fourier_scale,
            )

        value = StepValue(data_dim, cond_dim, config.hidden)
        reward = energy(0) if config.smooth_reward else None
        return cls(sampler, energy(config.fourier_features), value, config, reward)

    def energy_loss(self, data, samples, cond, generator=None) -> torch.Tensor:
        """Contrastive loss: data down; sampler samples, perturbed data and data under another
        row's condition (those two when weighted) up; plus E^2.

        With a separate reward energy, the same loss on the same batch trains it too.
        """
        noisy = None
        if self.config.perturbed_negatives > 0:
            low, high = self.config.perturb_scale
            scale = low + (high - low) * torch.rand(
                (data.shape[0],) + (1,) * (data.ndim - 1), generator=generator
            )
            noisy = data + scale * torch.randn(data.shape, generator=generator)
        other = None
        if self.config.mismatched_negatives > 0 and cond is not None:
            other = cond[torch.randperm(cond.shape[0], generator=generator)]
        loss = self._contrast(self.energy, data, samples, noisy, cond, other)
        if self.reward is not self.energy:
            loss = loss + self._contrast(self.reward, data, samples, noisy, cond, other)
        return loss

    def _contrast(self, energy, data, samples, noisy, cond, other=None) -> torch.Tensor:
        """One energy's loss: E(data) - E(negatives) + energy_reg * E^2 on every set."""
        config = self.config
        e_data, e_samples = energy(data, cond), energy(samples, cond)
        reg = (e_data**2).mean() + (e_samples**2).mean()
        loss = e_data.mean() - e_samples.mean() + config.energy_reg * reg
        if noisy is not None:
            e_noisy = energy(noisy, cond)
            contrast = e_data.mean() - e_noisy.mean() + config.energy_reg * (e_noisy**2).mean()
            loss = loss + config.perturbed_negatives * contrast
        if other is not None:
            e_other = energy(data, other)
            contrast = e_data.mean() - e_other.mean() + config.energy_reg * (e_other**2).mean()
            loss = loss + config.mismatched_negatives * contrast
        return loss

    def update(
        self,
        data: torch.Tensor,
        cond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, float]:
        """One step of each: energy (CD with sampler negatives), values (TD), sampler (DxDP)."""
        states, _ = self.sampler.rollout(tuple(data.shape), cond, generator)
        losses = {}
        for name, optimizer, compute in (
            (
                "energy",
                self.energy_optimizer,
                lambda: self.energy_loss(data, states[-1], cond, generator),
            ),
            (
                "value",
                self.value_optimizer,
                lambda: self.dxdp.value_loss(states, cond, self.reward),
            ),
            (
                "sampler",
                self.sampler_optimizer,
                lambda: self.dxdp.policy_loss(states, cond, self.reward, generator),
            ),
        ):
            loss = compute()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses[name] = float(loss.detach())
        self._update_ema()
        self.num_updates += 1
        return losses

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema_sampler is None:
            return
        decay = min(self.config.ema_decay, (1 + self.num_updates) / (10 + self.num_updates))
        for ema, live in zip(self.ema_sampler.parameters(), self.sampler.parameters(), strict=True):
            ema.lerp_(live, 1 - decay)

    def sample(
        self,
        shape: tuple[int, ...],
        cond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Samples from the EMA sampler (the live one without ``ema_decay``)."""
        return (self.ema_sampler or self.sampler).sample(shape, cond, generator)

    def fit(
        self,
        data: torch.Tensor,
        steps: int,
        cond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        callback=None,
    ) -> dict[str, float]:
        """``steps`` updates on random batches of ``data`` (and its matching ``cond`` rows)."""
        if cond is not None and len(cond) != len(data):
            raise GenerativeError(f"cond has {len(cond)} rows for {len(data)} data rows")
        losses: dict[str, float] = {}
        for _ in range(int(steps)):
            rows = torch.randint(0, len(data), (self.config.batch_size,), generator=generator)
            losses = self.update(data[rows], None if cond is None else cond[rows], generator)
            if callback is not None and callback(self, losses) is False:
                break
        return losses

    def _optimizers(self):
        return (self.sampler_optimizer, self.energy_optimizer, self.value_optimizer)

    def state_dict(self) -> dict:
        """Tensors only: sampler (denoiser and log sigmas), energy, value, velocity estimates."""
        state = {
            "sampler": self.sampler.state_dict(),
            "energy": self.energy.state_dict(),
            "value": self.value.state_dict(),
            "optimizers": [opt.state_dict() for opt in self._optimizers()],
            "velocity": self.dxdp.velocity.clone(),
            "num_updates": torch.tensor(self.num_updates),
        }
        if self.ema_sampler is not None:
            state["ema_sampler"] = self.ema_sampler.state_dict()
        if self.reward is not self.energy:
            state["reward"] = self.reward.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.energy.load_state_dict(state["energy"])
        if self.reward is not self.energy:
            self.reward.load_state_dict(state["reward"])
        self.value.load_state_dict(state["value"])
        for optimizer, saved in zip(self._optimizers(), state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        self.dxdp.velocity = state["velocity"].clone()
        self.num_updates = int(state["num_updates"])
        if self.ema_sampler is not None:
            self.ema_sampler.load_state_dict(state["ema_sampler"])


def sliced_wasserstein(
    x: torch.Tensor,
    y: torch.Tensor,
    num_projections: int = 256,
    generator: torch.Generator | None = None,
) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance of the projections.

    ``x`` and ``y`` are (N, D) with the same N (quantiles matched by sorting).
    """
    if x.shape != y.shape or x.ndim != 2:
        raise GenerativeError(f"sliced_wasserstein needs two (N, D) sets, got {x.shape}, {y.shape}")
    directions = torch.randn(x.shape[1], num_projections, generator=generator)
    directions = directions / directions.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x @ directions, dim=0)
    py, _ = torch.sort(y @ directions, dim=0)
    return float((px - py).abs().mean())


def auroc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """Probability that a positive scores above a negative (ties count half): the ROC area."""
    above = (positive[:, None] > negative[None, :]).double().mean()
    tied = (positive[:, None] == negative[None, :]).double().mean()
    return float(above + 0.5 * tied)
