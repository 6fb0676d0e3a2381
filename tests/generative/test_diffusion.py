"""Diffusion schedules and samplers against the exact noise prediction of a Gaussian mixture."""

from __future__ import annotations

import pytest
import torch

from generative.diffusion import (
    NoiseSchedule,
    ScheduleConfig,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    epsilon_loss,
)
from generative.errors import GenerativeError
from generative.networks import ConditionalUnet1D, MLPDenoiser
from generative.toy import oracle_epsilon, ring_mixture


def mode_shares(mixture, x: torch.Tensor) -> torch.Tensor:
    return mixture.responsibilities(x).argmax(1).bincount(minlength=len(mixture.weights)) / len(x)


@pytest.mark.parametrize("kind", ["linear", "cosine", "vp"])
def test_schedule_runs_from_clean_to_pure_noise(kind):
    schedule = NoiseSchedule(ScheduleConfig(kind=kind, num_steps=100))
    ab = schedule.alpha_bars
    assert ab[0] > 0.99 and ab[-1] < 0.01
    assert torch.all(ab[1:] < ab[:-1])
    assert torch.allclose(torch.cumprod(schedule.alphas, 0), ab, rtol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "cosine", "vp"])
@pytest.mark.parametrize("steps", [4, 10])
def test_few_step_schedules_stay_valid(kind, steps):
    schedule = NoiseSchedule(ScheduleConfig(kind=kind, num_steps=steps))
    assert torch.all((schedule.betas > 0) & (schedule.betas < 1))
    assert torch.all(schedule.alpha_bars > 0) and schedule.alpha_bars[-1] < 0.05


def test_unknown_schedule_and_bad_ddim_steps_are_errors():
    with pytest.raises(GenerativeError, match="unknown noise schedule 'quadratic'"):
        NoiseSchedule(ScheduleConfig(kind="quadratic"))
    with pytest.raises(GenerativeError, match="DDIM steps"):
        ddim_timesteps(100, 0)
    steps = ddim_timesteps(100, 8)
    assert steps[0] == 99 and steps[-1] == 0 and len(steps) == 8


@pytest.mark.parametrize(
    ("sampler", "kwargs"),
    [
        (ddpm_sample, {}),
        (ddim_sample, {"num_steps": 8}),
        (ddim_sample, {"num_steps": 50, "eta": 1.0}),
    ],
)
def test_samplers_with_the_exact_denoiser_reproduce_the_mixture(sampler, kwargs):
    """With the closed-form eps*, DDPM and DDIM (8 or 50 steps) sample the mixture itself."""
    mixture = ring_mixture(num_modes=4, radius=2.0, std=0.3)
    schedule = NoiseSchedule(ScheduleConfig(kind="cosine", num_steps=100))
    generator = torch.Generator().manual_seed(0)
    x = sampler(
        oracle_epsilon(mixture, schedule.alpha_bars),
        schedule,
        (3000, 2),
        generator=generator,
        **kwargs,
    )
    assert torch.allclose(mode_shares(mixture, x), torch.full((4,), 0.25), atol=0.04)
    # Within a mode the spread matches the component std (0.3): mean radius ~ 0.3 * sqrt(pi/2).
    nearest = (x[:, None] - mixture.means[None]).norm(dim=-1).min(1).values
    assert nearest.mean().item() == pytest.approx(0.3 * (torch.pi / 2) ** 0.5, rel=0.15)


@pytest.mark.training
def test_epsilon_loss_trains_a_conditional_mlp_to_the_exact_denoiser():
    """Conditioned on the class (one-hot), the trained model's eps approaches the class oracle."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    mixture = ring_mixture(num_modes=4, radius=1.0, std=0.15, num_classes=2)
    schedule = NoiseSchedule(ScheduleConfig(kind="linear", num_steps=50))
    model = MLPDenoiser(2, cond_dim=2, hidden=64, depth=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def batch(n):
        x, comp = mixture.sample(n, generator)
        return x, torch.nn.functional.one_hot(mixture.classes[comp], 2).float()

    x_eval, cond_eval = batch(2000)
    t_eval = torch.randint(0, 50, (2000,), generator=generator)
    noise = torch.randn(x_eval.shape, generator=generator)
    x_t = schedule.add_noise(x_eval, noise, t_eval)

    def eps_error():
        with torch.no_grad():
            return ((model(x_t, t_eval, cond_eval) - noise) ** 2).sum(1).mean().item()

    before = eps_error()
    for _ in range(400):
        x, cond = batch(128)
        loss = epsilon_loss(model, schedule, x, cond, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = eps_error()
    assert after < 0.5 * before
    # Sampling class 0 lands on class 0's two modes, in equal shares.
    cond = torch.tensor([[1.0, 0.0]]).expand(2000, 2)
    x = ddim_sample(model, schedule, (2000, 2), cond, num_steps=20, generator=generator, clip=2.0)
    shares = mode_shares(mixture, x)
    assert shares[[1, 3]].sum() < 0.05
    assert shares[0].item() == pytest.approx(0.5, abs=0.1)


def test_unet_maps_action_chunks_to_same_shape_and_checks_the_horizon():
    torch.manual_seed(0)
    net = ConditionalUnet1D(action_dim=2, cond_dim=6, down_dims=(16, 32, 64))
    x = torch.randn(3, 8, 2)
    out = net(x, torch.tensor([0, 5, 99]), torch.randn(3, 6))
    assert out.shape == (3, 8, 2)
    # FiLM: the conditioning changes the output.
    other = net(x, torch.tensor([0, 5, 99]), torch.randn(3, 6))
    assert not torch.allclose(out, other)
    with pytest.raises(GenerativeError, match="divisible by 4"):
        net(torch.randn(3, 6, 2), torch.tensor([0, 1, 2]), torch.randn(3, 6))
    with pytest.raises(GenerativeError, match="pass cond"):
        net(x, torch.tensor([0, 1, 2]))
