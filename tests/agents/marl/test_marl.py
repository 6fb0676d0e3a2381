"""The multi-agent learners: mixer properties, the matrix game's quantiles, persistence, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agents import algorithm_class, load_agent
from agents.errors import CheckpointError
from agents.marl import MARL_ALGORITHMS
from agents.marl.mixers import TeamValue

REPO = Path(__file__).resolve().parents[3]


def _mixers(kinds, n=3, state_dim=5, seed=0):
    torch.manual_seed(seed)
    return [TeamValue(kind, n, state_dim) for kind in kinds]


@pytest.mark.parametrize("kind", ["qmix", "dmix"])
def test_the_monotonic_mixer_never_decreases_in_an_agent_utility(kind):
    (mixer,) = _mixers([kind], seed=1)
    means = torch.randn(256, 3, requires_grad=True) * 5.0
    shapes = torch.randn(256, 3, 8, requires_grad=True)
    state = torch.randn(256, 5)
    team = mixer(means, shapes if kind == "dmix" else None, state)
    mean_grad, shape_grad = torch.autograd.grad(team.sum(), [means, shapes], allow_unused=True)
    assert (mean_grad >= 0).all() and mean_grad.abs().sum() > 0
    if kind == "dmix":  # the shape mixture's weights are non-negative too
        assert (shape_grad >= 0).all() and shape_grad.abs().sum() > 0


@pytest.mark.parametrize(("distributional", "expected"), [("ddn", "vdn"), ("dmix", "qmix")])
def test_with_zero_shapes_ddn_and_dmix_are_vdn_and_qmix(distributional, expected):
    dfac, plain = _mixers([distributional, expected], seed=2)
    if plain.mean_mixer is not None:  # the same QMIX weights in both
        plain.mean_mixer.load_state_dict(dfac.mean_mixer.state_dict())
    means, state = torch.randn(64, 3) * 3.0, torch.randn(64, 5)
    with torch.no_grad():
        team = dfac(means, torch.zeros(64, 3, 8), state)
        reference = plain(means, None, state)
        shifted = dfac(means, torch.randn(64, 3, 8), state)
    assert team.shape == (64, 1, 8)
    torch.testing.assert_close(team, reference.expand_as(team))
    assert not torch.allclose(shifted, team)  # the shapes do move the quantiles


@pytest.mark.training
@pytest.mark.timeout(300)
def test_matrix_game_distributional_learners_recover_the_return_quantiles():
    """DFAC's two-step game: DMIX's Z_tot follows the closed-form quantiles of the greedy joint
    policy's return, payoff + U(-w, w); QMIX's value is one number, right only on average."""
    from agents.marl import matrix_game

    dmix = matrix_game.quantile_check(matrix_game.train("dmix", 500))
    qmix = matrix_game.quantile_check(matrix_game.train("qmix", 300))
    assert dmix["max_quantile_error"] < 1.2, dmix
    assert dmix["mean_error"] < 0.8 and qmix["mean_error"] < 0.8, (dmix, qmix)
    assert qmix["max_quantile_error"] > 2.0, qmix  # w >= 3: a constant misses the tails
    learned = np.array(dmix["learned"])
    assert (np.diff(learned) > 0).all()  # a quantile function rises with tau


@pytest.fixture(scope="module")
def multi_config(synthetic_scene):
    from simulator import EnvConfig

    return EnvConfig(scene=synthetic_scene, agents=2, obs="state+scan", max_episode_steps=25)


@pytest.mark.parametrize("name", ["dmix", "iql"])
def test_save_and_load_round_trip_keeps_the_greedy_team(tmp_path, multi_config, name):
    from simulator import make_multi

    env = make_multi(multi_config)
    try:
        cls = algorithm_class(name)
        agent = cls.create(env, seed=3, batch_size=4, recurrent=True, hidden=16)
        agent.learn(150)
        assert agent.learner.updates > 0 and np.isfinite(agent.losses).all()
        agent.save(tmp_path / "agent.pt")
        again = cls.load(tmp_path / "agent.pt", env=env)
        observations, _ = env.reset(seed=7)
        agent.reset(), again.reset()
        for _ in range(3):
            first, _ = agent.predict(observations)
            assert again.predict(observations)[0] == first
            observations = env.step(first)[0]
        assert again.num_timesteps == agent.num_timesteps
        with pytest.raises(CheckpointError, match="not 'qmix'"):
            algorithm_class("qmix").load(tmp_path / "agent.pt")
    finally:
        env.close()
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pt"):
        cls.load(tmp_path / "broken.pt")


def test_a_checkpoint_refuses_an_environment_of_another_team_size(tmp_path, multi_config):
    from dataclasses import replace

    from simulator import make_multi

    env = make_multi(multi_config)
    try:
        agent = algorithm_class("vdn").create(env, seed=0)
        agent.save(tmp_path / "agent.pt")
    finally:
        env.close()
    bigger = make_multi(replace(multi_config, agents=3))
    try:
        with pytest.raises(CheckpointError, match="n_agents=2"):
            algorithm_class("vdn").load(tmp_path / "agent.pt", env=bigger)
    finally:
        bigger.close()


def test_every_learner_is_registered():
    for name in MARL_ALGORITHMS:
        assert algorithm_class(name).algorithm == name


@pytest.mark.slow
def test_driveenv_train_qmix_with_two_robots_writes_a_run_that_rollout_replays(
    tmp_path, synthetic_scene
):
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "driveenv.cli", "train", "qmix", "--scene", str(synthetic_scene),
        "--agents", "2", "--obs", "state", "--steps", "120", "--checkpoint-every", "60",
        "--eval-episodes", "2", "--max-episode-steps", "20", "--hp", "batch_size=2",
        "--out", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "done" and run["checkpoint"] == "agent.pt"
    assert len(run["evaluations"]) == 2
    for key in ("team_success_rate", "robot_collision_rate", "scene_collision_rate"):
        assert 0.0 <= run["evaluations"][-1][key] <= 1.0
    agent = load_agent(out)
    assert agent.algorithm == "qmix" and agent.sizes["n_agents"] == 2
    video = tmp_path / "team.mp4"
    command = [
        sys.executable, "-m", "driveenv.cli", "rollout", str(synthetic_scene), "--agents", "2",
        "--team", str(out), "--out", str(video),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert video.stat().st_size > 1000 and "team success" in result.stdout
