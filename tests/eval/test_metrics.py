"""Metric functions on hand-computed cases (values worked out on paper in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval import metrics
from eval.metrics import CannotCompute, agreement, rate, wilson_interval

SIM = [0.2, 0.5, 0.8]


def test_wilson_interval_known_values():
    # 8 of 10, z = 1.959964: centre = (0.8 + z^2/20) / (1 + z^2/10) = 0.7171...,
    # half = z sqrt(0.016 + z^2/400) / (1 + z^2/10) = 0.2269... -> (0.4902, 0.9433)
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    # 0 of 10: lower bound exactly 0, upper z^2/(n + z^2) = 0.2775
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    r = rate([True, False, True, True])
    assert (r.successes, r.n, r.value) == (3, 4, 0.75) and r.low < 0.75 < r.high


def test_perfect_agreement():
    real = [0.1, 0.4, 0.9]
    assert metrics.spearman(SIM, real) == pytest.approx(1.0)
    assert metrics.kendall(SIM, real) == pytest.approx(1.0)
    assert metrics.mmrv(SIM, real) == 0.0
    # mae = (0.1 + 0.1 + 0.1) / 3, bias = (0.1 + 0.1 - 0.1) / 3
    assert metrics.mae(SIM, real) == pytest.approx(0.1)
    assert metrics.bias(SIM, real) == pytest.approx(0.1 / 3)
    assert metrics.pearson(SIM, SIM) == pytest.approx(1.0)


def test_reversed_ranks():
    real = [0.9, 0.4, 0.1]
    assert metrics.spearman(SIM, real) == pytest.approx(-1.0)
    assert metrics.kendall(SIM, real) == pytest.approx(-1.0)
    # centred sim (-.3, 0, .3), real (.4333, -.0667, -.3667): cov sum -0.24,
    # squares 0.18 and 0.326667
    assert metrics.pearson(SIM, real) == pytest.approx(-0.24 / math.sqrt(0.18 * 0.98 / 3), rel=1e-6)
    # agent 1 (real .9) is ordered wrongly against 2 (gap .5) and 3 (gap .8): max .8;
    # agent 2: gaps .5 and .3 -> .5; agent 3: gap .8 -> mean (.8 + .5 + .8) / 3 = .7
    assert metrics.mmrv(SIM, real) == pytest.approx(0.7)


def test_ties():
    sim, real = [0.5, 0.5, 0.8], [0.2, 0.6, 0.9]
    # tau-b: 2 concordant, 0 discordant, one tie in sim: 2 / sqrt((3 - 1) * 3)
    assert metrics.kendall(sim, real) == pytest.approx(2 / math.sqrt(6))
    # ranks (1.5, 1.5, 3) vs (1, 2, 3): 1.5 / sqrt(1.5 * 2)
    assert metrics.spearman(sim, real) == pytest.approx(1.5 / math.sqrt(3))
    # RV(2, 1): sim 2 > 1 false, real 2 > 1 true -> |.6 - .2| = .4; nothing else: .4 / 3
    assert metrics.mmrv(sim, real) == pytest.approx(0.4 / 3)


def test_mmrv_tie_in_simulation_follows_simpler():
    """SIMPLER's released convention, (sim_i > sim_j) != (real_i > real_j), by hand."""
    sim, real = [0.5, 0.5, 0.0], [1.0, 0.0, 0.2]
    # agent 0: tied with 1 in sim but better in reality -> |1 - 0| = 1; vs 2 ordered right
    # agent 1: vs 0 no (0 > 1 false both ways); vs 2 sim says better, reality worse -> .2
    # agent 2: vs 0 ordered right; vs 1 sim says worse, reality better -> .2
    by_hand = (1.0 + 0.2 + 0.2) / 3
    assert metrics.mmrv(sim, real) == pytest.approx(by_hand)
    # the strict-< reading charged the tie to agent 1 instead (max(1, .2) there, 0 for agent 0)
    assert metrics.mmrv(sim, real) != pytest.approx((0.0 + 1.0 + 0.2) / 3)


@pytest.mark.parametrize(
    "function", [metrics.pearson, metrics.spearman, metrics.kendall, metrics.mmrv]
)
def test_single_agent_cannot_compute(function):
    with pytest.raises(CannotCompute, match="at least [23] agents"):
        function([0.5], [0.4])


@pytest.mark.parametrize("function", [metrics.pearson, metrics.spearman, metrics.kendall])
def test_two_agents_are_too_few_for_a_correlation(function):
    with pytest.raises(CannotCompute, match="any correlation is"):
        function([0.2, 0.8], [0.1, 0.5])


def test_mmrv_two_agents_swapped():
    # RV(1, 2) = RV(2, 1) = |0.5 - 0.1| (the simulation orders them the other way): mean 0.4
    assert metrics.mmrv([0.2, 0.8], [0.5, 0.1]) == pytest.approx(0.4)


@pytest.mark.parametrize("function", [metrics.pearson, metrics.spearman, metrics.kendall])
def test_zero_variance_cannot_compute(function):
    with pytest.raises(CannotCompute, match="simulated success is the same"):
        function([0.5, 0.5, 0.5], [0.1, 0.2, 0.3])
    with pytest.raises(CannotCompute, match="real success is the same"):
        function([0.1, 0.2, 0.3], [1.0, 1.0, 1.0])


def outcomes(rates: dict[str, float], n: int) -> dict[str, np.ndarray]:
    """Exact 0/1 outcome vectors with the given rate (rate * n successes)."""
    return {a: np.arange(n) < round(r * n) for a, r in rates.items()}


def test_agreement_values_and_bootstrap_intervals():
    sim = outcomes({"a": 0.2, "b": 0.5, "c": 0.8, "d": 0.95}, 200)
    real = outcomes({"a": 0.1, "b": 0.4, "c": 0.7, "d": 0.9}, 100)
    result = agreement(sim, real, n_bootstrap=500, seed=3)
    assert result["spearman"].value == pytest.approx(1.0) and result["mmrv"].value == 0.0
    for name, metric in result.items():
        assert metric.n_agents == 4 and metric.reason is None, name
        assert metric.low <= metric.value <= metric.high, name
    assert result["bias"].value == pytest.approx((0.1 + 0.1 + 0.1 + 0.05) / 4)
    assert result["bias"].low > 0  # clearly optimistic simulation
    again = agreement(sim, real, n_bootstrap=500, seed=3)
    assert again["srcc"].low == result["srcc"].low  # seeded


def test_agreement_single_agent_and_zero_variance_give_reasons_not_nan():
    single = agreement(outcomes({"a": 0.5}, 10), outcomes({"a": 0.3}, 10), n_bootstrap=50)
    assert single["srcc"].value is None and "at least 3 agents" in single["srcc"].reason
    assert single["mae"].value == pytest.approx(0.2)  # defined for one agent
    flat = agreement(
        outcomes({"a": 0.5, "b": 0.5, "c": 0.5}, 10),
        outcomes({"a": 0.3, "b": 0.6, "c": 0.9}, 10),
        n_bootstrap=50,
    )
    assert flat["kendall"].value is None and "zero variance" in flat["kendall"].reason
    for metric in (*single.values(), *flat.values()):
        assert metric.value is None or math.isfinite(metric.value)
