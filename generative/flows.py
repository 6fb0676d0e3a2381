"""EBFlow: an energy-based normalizing flow trained with score matching (Chao et al. 2023).

A flow f = L_K o g_{K-1} o ... o g_1 o L_1 of full linear layers L_i (weight W_i, bias) and
elementwise invertible nonlinearities g_i has the exact density
    log p(x) = log N(f(x); 0, I) + sum_i log|g_i'| + sum_i log|det W_i|.
The last sum does not depend on x, so it is part of the normalising constant: EBFlow defines the
energy E(x) = -log N(f(x); 0, I) - sum_i log|g_i'| without it, and trains E with a score-matching
objective (the score -grad E ignores constants). Training never computes a determinant, which
costs O(D^3) per linear layer; ``log_prob`` adds them back (once) for an exact evaluation.

The nonlinearity is a smooth leaky ReLU, g(x) = a x + (1 - a)(softplus(x) - log 2), whose slope
lies in (a, 1), so it is invertible; its inverse (for sampling) is found by Newton's method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from generative.errors import GenerativeError
from generative.score_matching import dsm_loss, fd_ssm_loss, ssm_loss

OBJECTIVES = ("ssm", "fdssm", "dsm")


@dataclass(frozen=True)
class EBFlowConfig:
    dim: int = 2
    num_layers: int = 4  # linear layers; a nonlinearity sits between consecutive ones
    slope: float = 0.1  # leaky slope a of the smooth leaky ReLU


class SmoothLeakyReLU(nn.Module):
    """g(x) = a x + (1 - a)(softplus(x) - log 2), elementwise; g(0) = 0, g' in (a, 1)."""

    def __init__(self, slope: float) -> None:
        super().__init__()
        if not 0 < slope < 1:
            raise GenerativeError(f"the leaky slope must be in (0, 1), got {slope}")
        self.slope = slope

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output and the per-sample log|det| (sum of log slopes)."""
        a = self.slope
        y = a * x + (1 - a) * (F.softplus(x) - math.log(2.0))
        log_slope = torch.log(a + (1 - a) * torch.sigmoid(x))
        return y, log_slope.sum(1)

    def inverse(self, y: torch.Tensor, iterations: int = 30) -> torch.Tensor:
        a = self.slope
        x = torch.where(y < 0, y / a, y)
        for _ in range(iterations):
            value = a * x + (1 - a) * (F.softplus(x) - math.log(2.0)) - y
            x = x - value / (a + (1 - a) * torch.sigmoid(x))
        return x


class EBFlow(nn.Module):
    """Linear / smooth-leaky-ReLU flow with an energy that omits the linear log-determinants."""

    def __init__(self, config: EBFlowConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or EBFlowConfig()
        if config.num_layers < 1:
            raise GenerativeError(
                f"EBFlow needs at least one linear layer, got {config.num_layers}"
            )
        self.linears = nn.ModuleList(
            nn.Linear(config.dim, config.dim) for _ in range(config.num_layers)
        )
        for linear in self.linears:
            nn.init.orthogonal_(linear.weight)
            nn.init.zeros_(linear.bias)
        self.activation = SmoothLeakyReLU(config.slope)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = f(x) and the nonlinear layers' log|det| per sample (no linear determinants)."""
        log_det = x.new_zeros(x.shape[0])
        for i, linear in enumerate(self.linears):
            x = linear(x)
            if i + 1 < len(self.linears):
                x, layer_log_det = self.activation(x)
                log_det = log_det + layer_log_det
        return x, log_det

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) = 1/2 |f(x)|^2 + D/2 log 2 pi - sum log|g'|; exp(-E) is p(x) up to a constant."""
        z, log_det = self(x)
        return 0.5 * (z**2).sum(1) + 0.5 * self.config.dim * math.log(2 * math.pi) - log_det

    def score(self, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
        """-grad_x E(x), differentiable (for score-matching training) when ``create_graph``."""
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(x).sum(), x, create_graph=create_graph)
        return -grad

    def linear_log_det(self) -> torch.Tensor:
        """sum_i log|det W_i|: the O(D^3) part, needed only for exact likelihoods."""
        return sum(torch.linalg.slogdet(linear.weight)[1] for linear in self.linears)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """The exact log-density: -E(x) plus the linear layers' log-determinants."""
        return -self.energy(x) + self.linear_log_det()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        x = torch.randn(n, self.config.dim, generator=generator)
        for i, linear in reversed(list(enumerate(self.linears))):
            if i + 1 < len(self.linears):
                x = self.activation.inverse(x)
            x = torch.linalg.solve(linear.weight, (x - linear.bias).T).T
        return x


def ebflow_loss(
    flow: EBFlow,
    x: torch.Tensor,
    objective: str = "ssm",
    sigma: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Score-matching loss of the flow's energy: "ssm", "fdssm" or "dsm" (noise ``sigma``)."""
    if objective == "ssm":
        return ssm_loss(flow.score, x, generator=generator)
    if objective == "fdssm":
        return fd_ssm_loss(flow.score, x, generator=generator)
    if objective == "dsm":
        return dsm_loss(lambda points, _sigma: flow.score(points), x, sigma, generator=generator)
    raise GenerativeError(f"unknown EBFlow objective {objective!r}; use one of {OBJECTIVES}")
