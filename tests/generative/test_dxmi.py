"""DxMI on a 2-D Gaussian mixture: a 4-step sampler fine-tuned from a 100-step DDPM, and its EBM.

The oracle is the mixture itself: samples are compared with fresh data by the sliced
Wasserstein distance, and the energy must rank data above uniform noise.
"""

from __future__ import annotations

import copy

import pytest
import torch

from generative.diffusion import (
    NoiseSchedule,
    ScheduleConfig,
    ddim_sample,
    ddpm_sample,
    epsilon_loss,
)
from generative.dxdp import sampler_timesteps
from generative.dxmi import DxMI, DxMIConfig, auroc, sliced_wasserstein
from generative.errors import GenerativeError
from generative.networks import MLPDenoiser
from generative.toy import ring_mixture

N = 2000
TOY_CONFIG = DxMIConfig(
    num_steps=4,
    entropy_weight=0.03,
    sampler_lr=2e-4,
    eta=0.2,
    fourier_features=32,
    fourier_scale=2.0,
    smooth_reward=True,
)


@pytest.fixture(scope="module", params=[0, 1])
def toy(request):
    """A ring of 8 modes, a 100-step DDPM trained on it, and DxMI fine-tuned from that DDPM.

    Two seeds, the first two: the targets must hold for the recipe, not for one lucky seed.
    """
    seed = request.param
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    mixture = ring_mixture(8, 2.0, 0.2)
    schedule = NoiseSchedule(ScheduleConfig(kind="linear", num_steps=100))
    denoiser = MLPDenoiser(2, hidden=128, depth=3)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=2e-3)
    for _ in range(1500):
        loss = epsilon_loss(denoiser, schedule, mixture.sample(256, generator)[0], None, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    dxmi = DxMI.from_denoiser(copy.deepcopy(denoiser), schedule, data_dim=2, config=TOY_CONFIG)
    dxmi.fit(mixture.sample(5000, generator)[0], 300, generator=generator)
    return mixture, schedule, denoiser, dxmi, seed


def distance(mixture, samples: torch.Tensor, seed: int) -> float:
    data, _ = mixture.sample(N, torch.Generator().manual_seed(seed + 1))
    return sliced_wasserstein(samples, data, 256, torch.Generator().manual_seed(seed + 2))


def test_four_step_dxmi_matches_the_100_step_ddpm_and_beats_4_step_ddim(toy):
    mixture, schedule, denoiser, dxmi, seed = toy

    def noise():
        return torch.Generator().manual_seed(seed + 3)

    ddpm = distance(mixture, ddpm_sample(denoiser, schedule, (N, 2), generator=noise()), seed)
    ddim = distance(
        mixture, ddim_sample(denoiser, schedule, (N, 2), num_steps=4, generator=noise()), seed
    )
    few = distance(mixture, dxmi.sample((N, 2), generator=noise()), seed)
    assert dxmi.sampler.num_steps == 4
    assert few <= 1.2 * ddpm, (few, ddpm)
    assert few < 0.5 * ddim, (few, ddim)


def test_energy_ranks_data_above_uniform_noise(toy):
    mixture, _, _, dxmi, seed = toy
    data, _ = mixture.sample(N, torch.Generator().manual_seed(seed + 4))
    noise = torch.rand(N, 2, generator=torch.Generator().manual_seed(seed + 5)) * 8 - 4
    with torch.no_grad():
        score = auroc(-dxmi.energy(data), -dxmi.energy(noise))
    # The true density itself scores about 0.967 here: uniform points that fall on a mode look
    # like data. Reaching 0.95 takes the perturbed-data negatives (the paper's loss alone never
    # shows the energy the gaps between modes) and Fourier features of x: without them the
    # energy stays a smooth annulus that ranks the gaps between modes like the modes.
    assert score >= 0.95, score


def test_with_a_smooth_reward_the_fourier_energy_never_moves_the_sampler():
    schedule = NoiseSchedule(ScheduleConfig(kind="linear", num_steps=20))
    config = DxMIConfig(2, fourier_features=8, smooth_reward=True, batch_size=32, clip=1.0)
    torch.manual_seed(0)
    first = DxMI.from_denoiser(MLPDenoiser(2, hidden=16), schedule, 2, config=config)
    second = copy.deepcopy(first)
    assert first.reward.fourier is None and first.energy.fourier is not None
    with torch.no_grad():
        for parameter in second.energy.parameters():
            parameter.mul_(-3.0)
    data = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    for model in (first, second):
        model.update(data, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(first.energy.net[0].weight, second.energy.net[0].weight)
    for mine, theirs in zip(first.sampler.parameters(), second.sampler.parameters(), strict=True):
        assert torch.equal(mine, theirs)


def test_state_dict_restores_the_same_sampler_energy_and_values(toy):
    mixture, schedule, denoiser, dxmi, _ = toy
    clone = DxMI.from_denoiser(copy.deepcopy(denoiser), schedule, data_dim=2, config=TOY_CONFIG)
    clone.load_state_dict(dxmi.state_dict())
    x, _ = mixture.sample(64, torch.Generator().manual_seed(6))
    pairs = (
        (dxmi.energy, clone.energy),
        (dxmi.reward, clone.reward),
        (dxmi.sampler, clone.sampler),
    )
    for shared, restored in pairs:
        torch.testing.assert_close(
            shared.state_dict(), restored.state_dict(), rtol=0, atol=0, check_dtype=True
        )
    first = dxmi.sample((64, 2), generator=torch.Generator().manual_seed(7))
    second = clone.sample((64, 2), generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, second)
    with torch.no_grad():
        assert torch.equal(dxmi.value(x, 1), clone.value(x, 1))


def test_sampler_timesteps_end_above_zero_and_decrease():
    steps = sampler_timesteps(100, 4)
    assert len(steps) == 4 and steps[0] == 99 and steps[-1] > 0
    assert all(a > b for a, b in zip(steps, steps[1:], strict=False))
    with pytest.raises(GenerativeError):
        sampler_timesteps(100, 100)


def test_measures_on_known_cases():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 2, generator=gen)
    assert sliced_wasserstein(x, x) == 0.0
    shifted = sliced_wasserstein(x, x + torch.tensor([3.0, 0.0]), 512, gen)
    assert 1.5 < shifted < 2.2  # E|3 cos(theta)| over directions = 6 / pi
    assert auroc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0
    assert auroc(torch.tensor([1.0]), torch.tensor([1.0])) == 0.5


def conditional_energy_gap(mismatched: float, seed: int) -> float:
    """Mean E(x, wrong cond) - E(x, its cond) after 300 energy updates on a two-mode task.

    x sits near (c, c) for c = +-1. The sampler's negatives are drawn from the data's own
    conditional law (a sampler that already matches), so the contrastive term carries nothing
    about the condition, and perturbed negatives are off: whatever the energy learns about c
    comes from the mismatched pairs.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    schedule = NoiseSchedule(ScheduleConfig(kind="linear", num_steps=10))
    config = DxMIConfig(mismatched_negatives=mismatched, perturbed_negatives=0.0)
    dxmi = DxMI.from_denoiser(MLPDenoiser(2, cond_dim=1, hidden=16), schedule, 2, 1, config)

    def draw(cond):
        return cond * torch.ones(len(cond), 2) + 0.1 * torch.randn(
            len(cond), 2, generator=generator
        )

    for _ in range(300):
        cond = torch.randint(0, 2, (256, 1), generator=generator).float() * 2 - 1
        loss = dxmi.energy_loss(draw(cond), draw(cond), cond, generator)
        dxmi.energy_optimizer.zero_grad()
        loss.backward()
        dxmi.energy_optimizer.step()
    cond = torch.randint(0, 2, (1000, 1), generator=generator).float() * 2 - 1
    x = draw(cond)
    with torch.no_grad():
        return float((dxmi.energy(x, -cond) - dxmi.energy(x, cond)).mean())


def test_mismatched_negatives_make_the_energy_read_its_condition():
    torch.set_num_threads(1)
    for seed in (0, 1):
        assert conditional_energy_gap(1.0, seed) > 0.4
        assert conditional_energy_gap(0.0, seed) < 0.2


def test_mismatched_conditioning_is_refused():
    schedule = NoiseSchedule(ScheduleConfig(kind="linear", num_steps=10))
    dxmi = DxMI.from_denoiser(MLPDenoiser(2, cond_dim=3, hidden=16), schedule, 2, 3)
    with pytest.raises(GenerativeError, match="cond has 4 rows"):
        dxmi.fit(torch.zeros(5, 2), 1, cond=torch.zeros(4, 3))


def test_negative_weights_are_refused():
    for field in ("entropy_weight", "energy_reg", "perturbed_negatives", "mismatched_negatives"):
        with pytest.raises(GenerativeError, match="non-negative"):
            DxMIConfig(**{field: -0.1})
