"""MEow: the flow's energy is the soft Q-function, exactly; and it learns a small control task."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.meow import MEow


@pytest.fixture(scope="module")
def pendulum_meow():
    env = gym.make("Pendulum-v1")
    return MEow("MlpPolicy", env, ent_coef=0.3, learning_starts=10, seed=0, device="cpu")


def _random_batch(model, n=64, seed=0):
    rng = np.random.default_rng(seed)
    obs = torch.as_tensor(rng.uniform(-1, 1, (n, 3)), dtype=torch.float32)
    actions = torch.as_tensor(rng.uniform(-0.99, 0.99, (n, 1)), dtype=torch.float32)
    return obs, actions


def _perturb(model, seed=1):
    """Random non-zero weights everywhere, so the identities are not trivially met at init."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.policy.flow.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))


def test_alpha_log_pi_equals_q_minus_v(pendulum_meow):
    model = pendulum_meow
    _perturb(model)
    model.policy.set_training_mode(False)
    obs = torch.as_tensor(np.random.default_rng(2).uniform(-1, 1, (128, 3)), dtype=torch.float32)
    with torch.no_grad():
        actions, log_pi = model.policy.action_log_prob(obs)  # forward change of variables
        q, v = model.policy.q_and_v(obs, actions)  # inverse pass through the flow
    alpha = float(model.policy.alpha)
    assert alpha == pytest.approx(0.3)
    inside = actions.abs().squeeze(1) < 0.999  # away from the atanh clamp
    assert inside.sum() > 100
    for column in range(2):  # both reward shifts cancel in Q - V
        expected = (alpha * log_pi)[inside]
        torch.testing.assert_close((q - v)[inside, column], expected, atol=1e-4, rtol=1e-5)


def test_policy_density_integrates_to_one(pendulum_meow):
    """exp((Q - V) / alpha) is a normalised density over [-1, 1]: V really is alpha log Z."""
    model = pendulum_meow
    _perturb(model, seed=3)
    model.policy.set_training_mode(False)
    grid = torch.linspace(-1 + 1e-6, 1 - 1e-6, 20_001)[:, None]
    for obs_row in ([0.3, -0.8, 0.5], [-1.0, 0.2, 0.9]):
        obs = torch.tensor([obs_row]).expand(grid.shape[0], 3)
        with torch.no_grad():
            q, v = model.policy.q_and_v(obs, grid)
        density = torch.exp((q[:, 0] - v[:, 0]) / model.policy.alpha).double()
        mass = torch.trapezoid(density, grid[:, 0].double()).item()
        assert mass == pytest.approx(1.0, abs=2e-3)


def test_value_does_not_depend_on_the_action(pendulum_meow):
    model = pendulum_meow
    _perturb(model, seed=4)
    obs, actions = _random_batch(model)
    with torch.no_grad():
        _, v1 = model.policy.q_and_v(obs, actions)
        _, v2 = model.policy.q_and_v(obs, -actions * 0.5)
        v3 = model.policy.value(obs)
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(v1, v3)
    obs.requires_grad_(False)
    actions = actions.clone().requires_grad_(True)
    _, v = model.policy.q_and_v(obs, actions)
    assert (
        not v.requires_grad or torch.autograd.grad(v.sum(), actions, allow_unused=True)[0] is None
    )


def test_sampled_and_deterministic_actions_lie_in_bounds(pendulum_meow):
    model = pendulum_meow
    _perturb(model, seed=5)
    obs = np.random.default_rng(6).uniform(-1, 1, (500, 3)).astype(np.float32)
    for deterministic in (False, True):
        actions, _ = model.predict(obs, deterministic=deterministic)
        assert actions.shape == (500, 1)
        assert np.all(actions >= -2.0) and np.all(actions <= 2.0)  # Pendulum's bounds
    first, _ = model.predict(obs, deterministic=True)
    second, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(first, second)


def test_tuned_alpha_is_the_alpha_the_policy_uses():
    env = gym.make("Pendulum-v1")
    model = MEow(
        "MlpPolicy",
        env,
        ent_coef="auto_0.5",
        learning_starts=20,
        batch_size=16,
        seed=0,
        device="cpu",
    )
    model.learn(50)
    alpha = float(model.policy.alpha)
    assert alpha != pytest.approx(0.5)  # it moved
    model.policy.set_training_mode(False)  # no dropout
    obs, actions = _random_batch(model, n=8)
    with torch.no_grad():
        features = model.policy.features(obs)
        q, _ = model.policy.q_and_v(obs, actions)
        log_p = model.policy.flow.log_unnormalized(features, actions)
        shifts = model.policy.flow.shifts(features)
    torch.testing.assert_close(q, alpha * log_p[:, None] + shifts)


def test_save_load_round_trip_gives_identical_actions(tmp_path, pendulum_meow):
    model = pendulum_meow
    model.policy.log_alpha.fill_(np.log(0.7))
    model.save(tmp_path / "meow.zip")
    loaded = MEow.load(tmp_path / "meow.zip", device="cpu")
    obs = np.random.default_rng(7).uniform(-1, 1, (20, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    assert float(loaded.policy.alpha) == pytest.approx(0.7)
