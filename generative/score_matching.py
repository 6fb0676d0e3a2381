"""Score-matching objectives: DSM, sliced SM (and its finite-difference variant), QCSGM, DLSM.

A *score model* here is any callable returning grad_x log p(x) estimates of x's shape (B, D):
a network that outputs a vector field, or ``-grad E`` of an energy (``generative.flows``).

- Denoising score matching (Vincent 2011): regress s(x + sigma z) onto -z / sigma.
- Sliced score matching (Song et al. 2019): E_v[ v^T grad_x(v^T s) + 1/2 (v^T s)^2 ] with random
  projections v (Rademacher or Gaussian), one Hessian-vector product per projection.
- Finite-difference SSM (Pang et al. 2020): the same objective with the directional derivative
  replaced by a central difference, so only forward passes (no double backprop) are needed.
- QCSGM (Chao et al. 2023, quasi-conservative score models): penalise ||J - J^T||_F^2, the
  non-symmetric part of the score's Jacobian (a true score is a gradient, so J is symmetric).
  Hutchinson's trick gives it from two vector-Jacobian products per projection:
  ||J - J^T||_F^2 = 2 tr(J J^T) - 2 tr(J J) = E_v[ 2 |J^T v|^2 - 2 v^T J J v ].
- DLSM (Chao et al. 2022, denoising likelihood score matching): train a noisy classifier so that
  its log-likelihood gradient plus the unconditional score matches the denoising target for
  samples of the class, giving good gradients for classifier guidance; cross-entropy optional.

Written by hand: these are short autograd expressions with no maintained CPU library for them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from generative.errors import GenerativeError

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
NoisyScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

PROJECTIONS = ("rademacher", "gaussian")


def random_projections(
    shape: tuple[int, ...], kind: str = "rademacher", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Vectors with E[v v^T] = I: random signs (lower variance) or standard normals."""
    if kind == "rademacher":
        return torch.randint(0, 2, shape, generator=generator).float() * 2 - 1
    if kind == "gaussian":
        return torch.randn(shape, generator=generator)
    raise GenerativeError(f"unknown projection {kind!r}; use one of {PROJECTIONS}")


def _noise_levels(sigma: float | torch.Tensor, batch: int) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    if sigma.ndim == 0:
        sigma = sigma.expand(batch)
    if sigma.shape != (batch,) or (sigma <= 0).any():
        raise GenerativeError(f"sigma must be positive, a number or one per sample ({batch})")
    return sigma


def dsm_loss(
    score_fn: NoisyScoreFn,
    x: torch.Tensor,
    sigma: float | torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Denoising score matching, weighted by sigma^2 so every noise level counts alike.

    ``score_fn(x_noisy, sigma (B,))`` estimates the score of the data convolved with N(0, sigma^2).
    """
    sigma = _noise_levels(sigma, x.shape[0])
    z = torch.randn(x.shape, generator=generator)
    s = sigma.view(-1, *([1] * (x.ndim - 1)))
    predicted = score_fn(x + s * z, sigma)
    return 0.5 * ((s * predicted + z) ** 2).flatten(1).sum(1).mean()


def ssm_loss(
    score_fn: ScoreFn,
    x: torch.Tensor,
    num_projections: int = 1,
    projection: str = "rademacher",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sliced score matching: E_v[ v^T grad_x(v^T s(x)) + 1/2 (v^T s(x))^2 ] (up to a constant)."""
    x = x.detach().requires_grad_(True)
    total = x.new_zeros(())
    score = score_fn(x)
    for _ in range(num_projections):
        v = random_projections(tuple(x.shape), projection, generator)
        vs = (v * score).flatten(1).sum(1)
        (grad_vs,) = torch.autograd.grad(vs.sum(), x, create_graph=True)
        total = total + ((v * grad_vs).flatten(1).sum(1) + 0.5 * vs**2).mean()
    return total / num_projections


def fd_ssm_loss(
    score_fn: ScoreFn,
    x: torch.Tensor,
    step: float = 1e-2,
    num_projections: int = 1,
    projection: str = "rademacher",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Finite-difference SSM: v^T grad(v^T s) ~ (v^T s(x + h v) - v^T s(x - h v)) / 2h.

    The square term uses the mean of the two evaluations, so the loss needs two forward passes
    per projection and no second-order autograd (for an energy model, one backward each).
    """
    total = x.new_zeros(())
    for _ in range(num_projections):
        v = random_projections(tuple(x.shape), projection, generator)
        both = score_fn(torch.cat([x + step * v, x - step * v]))
        plus, minus = both.chunk(2)
        vs_plus = (v * plus).flatten(1).sum(1)
        vs_minus = (v * minus).flatten(1).sum(1)
        total = (
            total + ((vs_plus - vs_minus) / (2 * step) + 0.125 * (vs_plus + vs_minus) ** 2).mean()
        )
    return total / num_projections


def fisher_divergence(score_fn: ScoreFn, true_score: ScoreFn, x: torch.Tensor) -> torch.Tensor:
    """1/2 E ||s(x) - s*(x)||^2 on the points x (drawn from the data)."""
    return 0.5 * ((score_fn(x) - true_score(x)) ** 2).flatten(1).sum(1).mean()


# ----------------------------------------------------------------------------------------------
# QCSGM: asymmetry of the score's Jacobian


def asymmetry_hutchinson(
    score_fn: ScoreFn,
    x: torch.Tensor,
    num_projections: int = 1,
    projection: str = "rademacher",
    generator: torch.Generator | None = None,
    create_graph: bool = False,
) -> torch.Tensor:
    """Per-sample estimate of ||J - J^T||_F^2 from two VJPs per projection (J = d score / dx)."""
    if x.ndim != 2:
        raise GenerativeError(f"asymmetry expects flat samples (B, D), got {tuple(x.shape)}")
    x = x.detach().requires_grad_(True)
    score = score_fn(x)
    estimate = x.new_zeros(x.shape[0])
    for _ in range(num_projections):
        v = random_projections(tuple(x.shape), projection, generator)
        (jt_v,) = torch.autograd.grad(score, x, grad_outputs=v, create_graph=True)
        (vt_jj,) = torch.autograd.grad(
            score, x, grad_outputs=jt_v, retain_graph=True, create_graph=create_graph
        )
        estimate = estimate + 2 * (jt_v**2).sum(1) - 2 * (vt_jj * v).sum(1)
    return estimate / num_projections


def asymmetry_exact_2d(score_fn: ScoreFn, x: torch.Tensor) -> torch.Tensor:
    """Exact ||J - J^T||_F^2 = 2 (dS_0/dx_1 - dS_1/dx_0)^2 per sample, for 2-D inputs."""
    if x.ndim != 2 or x.shape[1] != 2:
        raise GenerativeError(f"the exact asymmetry is for 2-D points (B, 2), got {tuple(x.shape)}")
    x = x.detach().requires_grad_(True)
    score = score_fn(x)
    (row0,) = torch.autograd.grad(score[:, 0].sum(), x, retain_graph=True)
    (row1,) = torch.autograd.grad(score[:, 1].sum(), x)
    return 2 * (row0[:, 1] - row1[:, 0]) ** 2


def qcsgm_loss(
    score_fn: NoisyScoreFn,
    x: torch.Tensor,
    sigma: float | torch.Tensor,
    weight: float = 0.1,
    num_projections: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DSM plus ``weight`` times the Hutchinson asymmetry (sigma^2-weighted) at the noisy points."""
    sigma = _noise_levels(sigma, x.shape[0])
    z = torch.randn(x.shape, generator=generator)
    x_noisy = (x + sigma[:, None] * z).detach()
    predicted = score_fn(x_noisy, sigma)
    dsm = 0.5 * ((sigma[:, None] * predicted + z) ** 2).sum(1).mean()
    asym = asymmetry_hutchinson(
        lambda points: score_fn(points, sigma),
        x_noisy,
        num_projections=num_projections,
        generator=generator,
        create_graph=True,
    )
    return dsm + weight * (sigma**4 * asym).mean()


# ----------------------------------------------------------------------------------------------
# DLSM: classifier for guidance


def classifier_log_likelihood_grad(
    classifier: NoisyScoreFn,
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: torch.Tensor,
    create_graph: bool = False,
) -> torch.Tensor:
    """grad_x log p(y | x, sigma) of a classifier returning logits ``classifier(x, sigma)``."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        log_probs = F.log_softmax(classifier(x, sigma), dim=-1)
        picked = log_probs.gather(1, y[:, None]).sum()
        (grad,) = torch.autograd.grad(picked, x, create_graph=create_graph)
    return grad


def dlsm_loss(
    classifier: NoisyScoreFn,
    score_fn: NoisyScoreFn,
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: float | torch.Tensor,
    dlsm_weight: float = 1.0,
    ce_weight: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Denoising likelihood score matching for a noisy classifier, plus optional cross-entropy.

    DLSM: 1/2 sigma^2 || grad log p(y|x~) + s(x~) - grad log q(x~|x) ||^2 for x of class y,
    with grad log q(x~|x) = -z / sigma. ``score_fn`` is the (fixed) unconditional score.
    ``dlsm_weight=0, ce_weight=1`` is the plain cross-entropy classifier.
    """
    if dlsm_weight == 0 and ce_weight == 0:
        raise GenerativeError("dlsm_loss needs dlsm_weight or ce_weight above zero")
    sigma = _noise_levels(sigma, x.shape[0])
    z = torch.randn(x.shape, generator=generator)
    s = sigma.view(-1, *([1] * (x.ndim - 1)))
    x_noisy = (x + s * z).detach()
    loss = x.new_zeros(())
    if dlsm_weight:
        grad = classifier_log_likelihood_grad(classifier, x_noisy, y, sigma, create_graph=True)
        with torch.no_grad():
            prior = score_fn(x_noisy, sigma)
        residual = s * (grad + prior) + z
        loss = loss + dlsm_weight * 0.5 * (residual**2).flatten(1).sum(1).mean()
    if ce_weight:
        loss = loss + ce_weight * F.cross_entropy(classifier(x_noisy, sigma), y)
    return loss


def guided_score(
    classifier: NoisyScoreFn,
    score_fn: NoisyScoreFn,
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: float | torch.Tensor,
    scale: float = 1.0,
) -> torch.Tensor:
    """Conditional score s(x) + scale * grad log p(y|x) for classifier-guided sampling."""
    sigma = _noise_levels(sigma, x.shape[0])
    grad = classifier_log_likelihood_grad(classifier, x, y, sigma)
    with torch.no_grad():
        return score_fn(x, sigma) + scale * grad
