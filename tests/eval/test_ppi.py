"""Prediction-powered estimates: calibrated on synthetic paired campaigns, agree with ppi-python,
pair trials with episodes, and say honestly when the simulation does not help."""

from __future__ import annotations

import numpy as np
import pytest
from ppi_py import ppi_mean_ci, ppi_mean_pointestimate

import eval.ppi as ppi
from eval.real_logs import load_trials
from eval.rollouts import load_campaign
from tests.eval.fakes import (
    BIAS_REGIMES,
    paired_outcomes,
    synthetic_rates,
    write_paired_campaign,
)

DRAWS, AGENTS, TRIALS, EPISODES = 2000, 4, 10, 100  # per agent: 2 conditions x 10 real trials


def campaign_batch(rng, regime: str, correlation: float, trials: int = TRIALS):
    """DRAWS synthetic campaigns flattened to (DRAWS * AGENTS) agents pooled over 2 conditions."""
    sim_p, real_p = synthetic_rates(rng, DRAWS, AGENTS, regime)
    sim, real = paired_outcomes(rng, sim_p, real_p, correlation, EPISODES, trials)
    rows = DRAWS * AGENTS
    return (
        real.reshape(rows, 2 * trials),
        sim[..., :trials].reshape(rows, 2 * trials),
        sim[..., trials:].reshape(rows, 2 * (EPISODES - trials)),
        real_p.mean(axis=-1).reshape(rows),
    )


@pytest.mark.parametrize("correlation", [0.5, 0.8, 0.95])
@pytest.mark.parametrize("regime", BIAS_REGIMES)
def test_95_percent_intervals_cover_the_truth_93_to_97_percent(regime, correlation):
    """2000 campaigns of 4 agents (20 real trials, 180 unpaired episodes each), sim unbiased /
    optimistic / mixed, sim-real correlation 0.5 / 0.8 / 0.95, each campaign's discordance prior
    pooled over its own agents: coverage within 93-97% and narrower than the real trials alone
    (by at least 15% where the simulation correlates at 0.8 or more)."""
    rng = np.random.default_rng(21 + BIAS_REGIMES.index(regime) + int(100 * correlation))
    real, paired, unpaired, truth = campaign_batch(rng, regime, correlation)
    prior = ppi.grouped_priors(real, paired, AGENTS)
    e = ppi.ppi_mean(real, paired, unpaired, confidence=0.95, pseudo=prior)
    coverage = np.mean((e.low <= truth) & (truth <= e.high))
    assert 0.93 <= coverage <= 0.97, coverage
    low, high = ppi.wilson(real.mean(axis=1), real.shape[1], 0.95)
    assert np.mean((low <= truth) & (truth <= high)) >= 0.93
    narrower = 0.85 if correlation >= 0.8 else 1.0
    assert np.mean(e.high - e.low) < narrower * np.mean(high - low)


def test_the_prior_is_pooled_per_campaign_and_floored():
    real = np.array([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    sim = np.array([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]])  # one sim-only success in 8
    assert ppi.discordance_prior(real, sim) == (ppi.PRIOR_TRIALS / 8, ppi.PSEUDO_FLOOR)
    both = ppi.grouped_priors(np.vstack([real, real]), np.vstack([sim, real]), 2)
    np.testing.assert_allclose(both[:2], [[ppi.PRIOR_TRIALS / 8, ppi.PSEUDO_FLOOR]] * 2)
    np.testing.assert_allclose(both[2:], [[ppi.PSEUDO_FLOOR, ppi.PSEUDO_FLOOR]] * 2)


def test_uncorrelated_simulation_gets_no_weight_and_real_only_width():
    rng = np.random.default_rng(3)
    real, paired, unpaired, truth = campaign_batch(rng, "mixed", 0.0)
    e = ppi.ppi_mean(real, paired, unpaired)
    assert np.median(e.lam) < 0.1
    assert np.mean((e.low <= truth) & (truth <= e.high)) >= 0.93
    low, high = ppi.wilson(real.mean(axis=1), real.shape[1], 0.95)
    assert abs(np.mean(e.high - e.low) - np.mean(high - low)) < 0.03


def test_pseudo_trials_do_not_move_the_estimate():
    """Where the simulation gets no weight the estimate is the real trials' own rate (the report
    shows the two side by side)."""
    real, paired, unpaired, _ = campaign_batch(np.random.default_rng(5), "mixed", 0.0)
    e = ppi.ppi_mean(real, paired, unpaired)
    alone = e.lam == 0
    assert alone.sum() > 1000
    np.testing.assert_allclose(e.estimate[alone], real.mean(axis=1)[alone])


def test_matches_ppi_python_without_the_small_sample_correction():
    """With no pseudo-trials and many trials, the estimate is ppi-python's, and the interval is
    its normal interval (the Wilson form only matters at small counts)."""
    rng = np.random.default_rng(0)
    sim, real = paired_outcomes(rng, np.array([0.7]), np.array([0.6]), 0.8, 6000, 2000)
    y, h, u = real[0], sim[0, :2000], sim[0, 2000:]
    e = ppi.ppi_mean(y, h, u, pseudo=(0.0, 0.0))
    batched = ppi.ppi_mean(y[None], h[None], u[None], pseudo=np.zeros((1, 2)))
    assert batched.estimate[0] == pytest.approx(e.estimate[0])
    assert batched.low[0] == pytest.approx(e.low[0])
    lam = float(e.lam[0])
    assert 0.3 < lam <= 1
    assert e.estimate[0] == pytest.approx(float(ppi_mean_pointestimate(y, h, u, lam=lam)[0]))
    low, high = ppi_mean_ci(y, h, u, alpha=0.05, lam=lam)
    assert e.low[0] == pytest.approx(float(low[0]), abs=2e-3)
    assert e.high[0] == pytest.approx(float(high[0]), abs=2e-3)


def test_a_few_lucky_agreements_do_not_claim_a_perfect_simulator():
    """Ten paired trials that all agree with the sim: the interval stays wide enough to be honest."""
    real = np.array([1.0] * 6 + [0.0] * 4)
    e = ppi.ppi_mean(real, real.copy(), np.tile([1.0, 0.0], 100)[:190])
    assert e.high[0] - e.low[0] > 0.1 and e.effective_trials[0] < 200


def test_verdict_needs_three_agents_and_correlation():
    rng = np.random.default_rng(1)
    sim, real = paired_outcomes(rng, np.full(4, 0.6), np.full(4, 0.5), 0.9, 40, 20)
    groups = [(real[i], sim[i, :20]) for i in range(4)]
    verdict = ppi.judge(groups)
    assert verdict.helps and verdict.correlation > 0.6 and verdict.agents == 4
    two = ppi.judge(groups[:2])
    assert not two.helps and "at least 3" in two.reason
    sim, real = paired_outcomes(rng, np.full(4, 0.6), np.full(4, 0.5), 0.0, 40, 20)
    weak = ppi.judge([(real[i], sim[i, :20]) for i in range(4)], by_seed=False)
    assert not weak.helps and "seed column" in weak.reason
    paired = ppi.judge([(real[i], sim[i, :20]) for i in range(4)], by_seed=True)
    assert not paired.helps and "correlation" in paired.reason
    assert "seed column" not in paired.reason


@pytest.mark.parametrize("seed_column", [True, False])
def test_pairs_from_a_campaign_and_trial_log(tmp_path, seed_column):
    rng = np.random.default_rng(4)
    real_p = np.array([[0.8, 0.6], [0.5, 0.3], [0.3, 0.2]])
    eval_dir, log = write_paired_campaign(
        tmp_path, rng, real_p, real_p, 0.9, episodes=30, trials=8, seed_column=seed_column
    )
    campaign, trials = load_campaign(eval_dir), load_trials(log)
    pairs = ppi.pair_trials(campaign, trials, "agent0", ["capture", "dim"])
    assert pairs.by_seed is seed_column and pairs.real.size == 16
    if seed_column:  # the 8 reproduced seeds per condition leave 22 unpaired each
        assert pairs.unpaired_sim.size == 44 and set(pairs.paired_sim) <= {0.0, 1.0}
    else:  # paired with the condition's rate; every episode stays an unlabeled prediction
        assert pairs.unpaired_sim.size == 60 and len(set(pairs.paired_sim)) <= 2
    np.testing.assert_allclose(pairs.unpaired_weights, 1.0)
    single = ppi.pair_trials(campaign, trials, "agent1", ["dim"])
    assert single.condition == "dim" and single.real.size == 8
    assert ppi.pair_trials(campaign, trials, "nobody", ["dim"]) is None
