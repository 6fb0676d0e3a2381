"""Score-matching objectives against the closed-form score of a noisy Gaussian mixture."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from generative.errors import GenerativeError
from generative.score_matching import (
    asymmetry_exact_2d,
    asymmetry_hutchinson,
    dlsm_loss,
    dsm_loss,
    fd_ssm_loss,
    guided_score,
    qcsgm_loss,
    ssm_loss,
)
from generative.toy import ring_mixture

SIGMA = 0.3


def mlp(out: int = 2, hidden: int = 64) -> nn.Module:
    return nn.Sequential(
        nn.Linear(2, hidden),
        nn.SiLU(),
        nn.Linear(hidden, hidden),
        nn.SiLU(),
        nn.Linear(hidden, out),
    )


def relative_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    return (((estimate - truth) ** 2).sum(1).mean() / (truth**2).sum(1).mean()).item()


def train(model: nn.Module, loss_fn, steps: int, lr: float = 3e-3) -> nn.Module:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


@pytest.fixture(scope="module")
def mixture():
    return ring_mixture(num_modes=4, radius=2.0, std=0.3, num_classes=2)


@pytest.mark.training
@pytest.mark.parametrize("objective", ["dsm", "ssm", "fdssm"])
def test_score_matching_recovers_the_oracle_score(mixture, objective):
    """Each objective, trained on mixture samples, learns the score of the mixture at noise 0.3."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    noisy = mixture.convolved(SIGMA)
    model = mlp()

    def loss():
        x, _ = mixture.sample(128, generator)
        if objective == "dsm":
            return dsm_loss(lambda points, _sigma: model(points), x, SIGMA, generator)
        x = x + SIGMA * torch.randn(x.shape, generator=generator)  # samples of the noisy density
        if objective == "ssm":
            return ssm_loss(model, x, generator=generator)
        return fd_ssm_loss(model, x, generator=generator)

    x_eval, _ = noisy.sample(2000, generator)
    before = relative_error(model(x_eval).detach(), noisy.score(x_eval))
    train(model, loss, steps=500)
    after = relative_error(model(x_eval).detach(), noisy.score(x_eval))
    assert before > 0.9
    assert after < 0.1


def test_hutchinson_asymmetry_matches_the_exact_2d_value():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    field = mlp()  # an arbitrary non-conservative vector field
    x = torch.randn(400, 2, generator=generator)
    exact = asymmetry_exact_2d(field, x).mean().item()
    for projection in ("rademacher", "gaussian"):
        estimate = asymmetry_hutchinson(field, x, 64, projection, generator).mean().item()
        assert estimate == pytest.approx(exact, rel=0.05)
    # A gradient field has a symmetric Jacobian: no asymmetry.
    potential = mlp(out=1)

    def conservative(points):
        with torch.enable_grad():
            return torch.autograd.grad(potential(points).sum(), points, create_graph=True)[0]

    assert asymmetry_exact_2d(conservative, x).abs().max() < 1e-8
    assert asymmetry_hutchinson(conservative, x, 4, generator=generator).abs().max() < 1e-6


@pytest.mark.training
def test_qcsgm_regulariser_drives_the_asymmetry_down(mixture):
    """Same DSM training with and without the QCSGM term: the term cuts ||J - J^T||_F^2."""
    generator = torch.Generator().manual_seed(0)
    x_eval, _ = mixture.convolved(SIGMA).sample(1000, generator)
    results = {}
    for weight in (0.0, 20.0):
        torch.manual_seed(0)
        model = mlp()
        gen = torch.Generator().manual_seed(0)

        def loss(model=model, gen=gen, weight=weight):
            x, _ = mixture.sample(128, gen)
            if weight == 0:
                return dsm_loss(lambda points, _s: model(points), x, SIGMA, gen)
            return qcsgm_loss(lambda points, _s: model(points), x, SIGMA, weight, generator=gen)

        train(model, loss, steps=300)
        results[weight] = (
            asymmetry_exact_2d(model, x_eval).mean().item(),
            relative_error(model(x_eval).detach(), mixture.convolved(SIGMA).score(x_eval)),
        )
    (asym_plain, err_plain), (asym_reg, err_reg) = results[0.0], results[20.0]
    assert asym_reg < 0.5 * asym_plain
    assert err_reg < 0.15 and err_plain < 0.15  # the score is still learned


@pytest.mark.training
def test_dlsm_classifier_gives_a_better_conditional_score_than_cross_entropy(mixture):
    """Classifier guidance with the exact unconditional score: DLSM's gradient beats CE's."""
    sigma = 0.5
    noisy = mixture.convolved(sigma)
    generator = torch.Generator().manual_seed(0)
    x_eval, comp = noisy.sample(2000, generator)
    y_eval = mixture.classes[comp]
    truth = noisy.conditional_score(x_eval, y_eval)

    def prior(points, _sigma):
        return noisy.score(points)

    errors = {}
    for name, (dlsm_weight, ce_weight) in {"ce": (0, 1), "dlsm": (1, 0), "dlsm+ce": (1, 1)}.items():
        torch.manual_seed(0)
        classifier = mlp()
        gen = torch.Generator().manual_seed(0)

        def loss(classifier=classifier, gen=gen, dw=dlsm_weight, cw=ce_weight):
            x, c = mixture.sample(256, gen)
            return dlsm_loss(
                lambda p, _s: classifier(p), prior, x, mixture.classes[c], sigma, dw, cw, gen
            )

        train(classifier, loss, steps=400)
        guided = guided_score(lambda p, _s, c=classifier: c(p), prior, x_eval, y_eval, sigma)
        errors[name] = relative_error(guided, truth)
    assert errors["dlsm"] < 0.6 * errors["ce"]
    assert errors["dlsm+ce"] < 0.8 * errors["ce"]
    with pytest.raises(GenerativeError, match="dlsm_weight or ce_weight"):
        dlsm_loss(mlp(), prior, x_eval, y_eval, sigma, 0, 0)
