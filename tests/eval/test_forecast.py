"""The sim-to-real forecast: seeded calibration on synthetic agents, shrinkage, validation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from eval.forecast import AgentCounts, fit_mapping, forecast, leave_one_agent_out, mapping_curve

TRUE_INTERCEPT, TRUE_SLOPE, TRUE_SCATTER = -0.5, 0.8, 0.2


def synthetic_agents(rng: np.random.Generator, count: int, sim_n: int = 100, real_n: int = 20):
    """Agents whose true real logit is a known linear function of their sim logit (plus scatter)."""
    sim_p = rng.uniform(0.15, 0.95, size=count)
    real_p = special.expit(
        TRUE_INTERCEPT
        + TRUE_SLOPE * special.logit(sim_p)
        + TRUE_SCATTER * rng.standard_normal(count)
    )
    agents = [
        AgentCounts(
            f"agent{i}",
            int(rng.binomial(sim_n, sim_p[i])),
            sim_n,
            int(rng.binomial(real_n, real_p[i])),
            real_n,
        )
        for i in range(count)
    ]
    return agents, sim_p, real_p


@pytest.mark.parametrize("agent_count", [3, 6])
def test_forecast_interval_is_calibrated_on_a_known_linear_relation(agent_count):
    """The 95% interval for a new sim-only agent holds its true real success in >= 90% of draws,
    fitted on a handful of agents (20 real trials and 100 episodes each)."""
    rng = np.random.default_rng(2024 + agent_count)
    draws, inside, widths = 100, 0, []
    for i in range(draws):
        agents, _, _ = synthetic_agents(rng, agent_count)
        new, _, new_real = synthetic_agents(rng, 1)
        target = AgentCounts("new", new[0].sim_successes, new[0].sim_n)
        result = forecast(fit_mapping(agents), target, draws=2000, seed=i)
        inside += result.low <= new_real[0] <= result.high
        widths.append(result.high - result.low)
    assert inside / draws >= 0.90
    assert np.mean(widths) < 0.6  # and it says something: not the whole [0, 1]


def test_mapping_recovers_a_strong_relation_with_many_agents():
    rng = np.random.default_rng(0)
    agents, _, _ = synthetic_agents(rng, 30, sim_n=400, real_n=200)
    summary = fit_mapping(agents).summary()
    assert abs(summary["slope"] - TRUE_SLOPE) < 0.25
    assert abs(summary["intercept"] - TRUE_INTERCEPT) < 0.35
    assert len(summary["fitted_on"]) == 30


def test_no_real_trials_falls_back_to_the_identity_prior_with_a_wide_interval():
    mapping = fit_mapping([AgentCounts("only_sim", 70, 100)])
    assert mapping.agents == []
    result = forecast(mapping, AgentCounts("only_sim", 70, 100))
    assert abs(result.median - 0.7) < 0.05 and result.high - result.low > 0.4
    curve = mapping_curve(mapping, np.array([0.1, 0.5, 0.9]))
    assert np.all(curve["prediction_low"] <= curve["line_low"])
    assert np.all(curve["median"] <= curve["line_high"])


def test_agent_with_few_real_trials_moves_the_mapping_less():
    base = [AgentCounts("a", 20, 100, 4, 20), AgentCounts("b", 50, 100, 10, 20)]
    few = fit_mapping([*base, AgentCounts("c", 80, 100, 1, 2)]).summary()
    many = fit_mapping([*base, AgentCounts("c", 80, 100, 50, 100)]).summary()
    # c looks like 50% real either way; with 100 trials it drags the line down much more
    assert many["slope"] < few["slope"] - 0.05


def test_leave_one_agent_out_reports_too_few_agents_honestly():
    two = [
        AgentCounts("a", 20, 100, 4, 20),
        AgentCounts("b", 50, 100, 10, 20),
        AgentCounts("c", 50, 100),
    ]
    validation = leave_one_agent_out(two)
    assert validation.held_out == [] and "too few agents with real trials" in validation.reason
    assert validation.coverage is None and validation.to_json()["forecast_mae"] is None


def test_leave_one_agent_out_on_synthetic_agents():
    rng = np.random.default_rng(5)
    agents, _, _ = synthetic_agents(rng, 6)
    validation = leave_one_agent_out(agents, draws=2000)
    assert validation.reason is None and len(validation.held_out) == 6
    assert validation.coverage >= 0.5
    # the calibrated forecast beats taking the (optimistic) sim success at face value
    assert validation.forecast_mae < validation.raw_sim_mae
