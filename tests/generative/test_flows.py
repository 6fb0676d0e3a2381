"""EBFlow: exact likelihood, score-matching training without determinants, KL falls."""

from __future__ import annotations

import math

import pytest
import torch

from generative.errors import GenerativeError
from generative.flows import EBFlow, EBFlowConfig, ebflow_loss
from generative.score_matching import fisher_divergence
from generative.toy import GaussianMixture


def perturbed_flow(seed: int = 0) -> EBFlow:
    torch.manual_seed(seed)
    flow = EBFlow(EBFlowConfig(dim=2, num_layers=3, slope=0.5))
    with torch.no_grad():
        for linear in flow.linears:
            linear.weight.mul_(torch.tensor([[2.0, 0.5], [-0.3, 1.6]]))
            linear.bias.normal_(0, 0.3)
    return flow


def test_log_prob_is_the_change_of_variables_density():
    """-E(x) + sum log|det W| equals log N(f(x)) + log|det df/dx| from the full Jacobian."""
    flow = perturbed_flow()
    x = torch.randn(20, 2)
    jacobians = torch.func.vmap(torch.func.jacrev(lambda p: flow(p[None])[0][0]))(x)
    z, _ = flow(x)
    reference = -0.5 * (z**2).sum(1) - math.log(2 * math.pi) + torch.linalg.slogdet(jacobians)[1]
    assert torch.allclose(flow.log_prob(x), reference, atol=1e-4)


def test_density_integrates_to_one_and_sampling_inverts_the_flow():
    flow = perturbed_flow()
    grid = torch.linspace(-12, 12, 481)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([xx.flatten(), yy.flatten()], 1)
    with torch.no_grad():
        mass = flow.log_prob(points).exp().sum().item() * (grid[1] - grid[0]).item() ** 2
    assert mass == pytest.approx(1.0, abs=0.02)
    x = flow.sample(500, torch.Generator().manual_seed(0))
    z, _ = flow(x)
    # Samples map to a standard normal in latent space.
    assert z.mean(0).abs().max() < 0.15 and (z.std(0) - 1).abs().max() < 0.15


@pytest.mark.training
@pytest.mark.parametrize("objective", ["ssm", "fdssm"])
def test_score_matching_training_lowers_kl_and_never_takes_a_determinant(objective, monkeypatch):
    data = GaussianMixture(torch.tensor([[-1.0, -0.5], [1.0, 0.8]]), torch.tensor([0.4, 0.5]))
    generator = torch.Generator().manual_seed(0)
    x_eval, _ = data.sample(2000, generator)
    torch.manual_seed(0)
    flow = EBFlow(EBFlowConfig(dim=2, num_layers=4))

    def kl() -> float:
        with torch.no_grad():
            return (data.log_prob(x_eval) - flow.log_prob(x_eval)).mean().item()

    def fisher() -> float:
        return fisher_divergence(
            lambda p: flow.score(p, create_graph=False), data.score, x_eval
        ).item()

    kl_before, fisher_before = kl(), fisher()
    optimizer = torch.optim.Adam(flow.parameters(), lr=5e-3)
    with monkeypatch.context() as patch:

        def forbidden(*args, **kwargs):
            raise AssertionError("training computed a log-determinant")

        patch.setattr(torch.linalg, "slogdet", forbidden)
        patch.setattr(torch.linalg, "det", forbidden)
        for _ in range(300):
            x, _ = data.sample(128, generator)
            loss = ebflow_loss(flow, x, objective, generator=generator)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    kl_after, fisher_after = kl(), fisher()
    assert kl_after < 0.5 * kl_before
    assert fisher_after < 0.6 * fisher_before


def test_bad_settings_are_generative_errors():
    with pytest.raises(GenerativeError, match="leaky slope"):
        EBFlow(EBFlowConfig(slope=1.5))
    with pytest.raises(GenerativeError, match="unknown EBFlow objective 'mle'"):
        ebflow_loss(EBFlow(), torch.randn(4, 2), "mle")
