"""Success rates with intervals, and how well simulated success agrees with real success.

Per agent and condition: the success rate with a Wilson 95% interval (good at small counts and
at 0 or 100%, unlike the normal approximation), the collision rate, the route completion.

Across agents (each a pair: simulated success rate, real success rate):

- SRCC: the sim-vs-real correlation coefficient of Kadian et al. 2020, the Pearson correlation
  of the two rates across agents.
- Spearman and Kendall (tau-b, which handles ties) rank correlations.
  The three correlations need at least 3 agents: with 2, any correlation is +1 or -1.
- MMRV, the mean maximum rank violation of SIMPLER (Li et al. 2024), as its released code
  computes it (``simpler_env/utils/metrics.py``):
  ``RV(i, j) = |real_i - real_j| * 1[(sim_i > sim_j) != (real_i > real_j)]`` and
  ``MMRV = mean_i max_j RV(i, j)``: for each agent, the worst real-success gap among the agents
  the simulation orders wrongly against it, averaged. 0 is perfect; it is in success-rate units.
  With the strict ``>``, a tie in simulation between agents that differ in reality is a violation
  of the pair once, charged to the agent that is better in reality (``real_i > real_j`` holds,
  ``sim_i > sim_j`` does not); the agent worse in reality is not charged for it.
- MAE and bias (mean of sim - real) of the simulated rate used as a predictor of the real rate.

Each comes with a percentile bootstrap interval over trials: every agent's simulated episodes and
real trials are resampled with replacement (seeded), the metric recomputed. A metric that is not
defined for the data (one agent, no variance) is returned with ``value=None`` and a ``reason``,
never as NaN.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

DEFAULT_CONFIDENCE = 0.95
MIN_AGENTS_CORRELATION = 3  # two points always correlate perfectly: no information


class CannotCompute(Exception):
    """A metric is undefined for these data; the message says why (shown in the report)."""


@dataclass(frozen=True)
class Rate:
    """A proportion ``successes / n`` with its Wilson interval."""

    successes: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float | None:
        return self.successes / self.n if self.n else None

    def to_json(self) -> dict:
        return {
            "value": self.value,
            "successes": self.successes,
            "n": self.n,
            "low": self.low,
            "high": self.high,
        }


def wilson_interval(
    successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there are no trials."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # Clip rounding only: exact at the ends (p = 0 gives low = 0, p = 1 gives high = 1).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return float(low), float(high)


def rate(outcomes: Sequence[bool] | np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> Rate:
    """The rate of ``True`` among ``outcomes`` with its Wilson interval."""
    outcomes = np.asarray(outcomes, dtype=bool)
    successes, n = int(outcomes.sum()), int(outcomes.size)
    low, high = wilson_interval(successes, n, confidence)
    return Rate(successes=successes, n=n, low=low, high=high)


# --- agreement across agents: point values ----------------------------------------------------


def _paired(
    sim: Sequence[float], real: Sequence[float], minimum: int
) -> tuple[np.ndarray, np.ndarray]:
    sim, real = np.asarray(sim, dtype=float), np.asarray(real, dtype=float)
    if sim.shape != real.shape or sim.ndim != 1:
        raise ValueError(
            f"sim and real must be paired 1-D arrays, got {sim.shape} and {real.shape}"
        )
    if sim.size < minimum:
        why = " (with 2, any correlation is +1 or -1)" if sim.size == 2 else ""
        raise CannotCompute(
            f"needs at least {minimum} agents with both sim and real results, has {sim.size}{why}"
        )
    return sim, real


def _require_variance(sim: np.ndarray, real: np.ndarray) -> None:
    if np.ptp(sim) == 0:
        raise CannotCompute("simulated success is the same for every agent (zero variance)")
    if np.ptp(real) == 0:
        raise CannotCompute("real success is the same for every agent (zero variance)")


def pearson(sim: Sequence[float], real: Sequence[float]) -> float:
    """SRCC: Pearson correlation of sim and real success across agents."""
    sim, real = _paired(sim, real, MIN_AGENTS_CORRELATION)
    _require_variance(sim, real)
    return float(np.clip(np.corrcoef(sim, real)[0, 1], -1.0, 1.0))


def spearman(sim: Sequence[float], real: Sequence[float]) -> float:
    """Spearman rank correlation (ties take their average rank)."""
    sim, real = _paired(sim, real, MIN_AGENTS_CORRELATION)
    _require_variance(sim, real)
    return float(stats.spearmanr(sim, real).statistic)


def kendall(sim: Sequence[float], real: Sequence[float]) -> float:
    """Kendall's tau-b rank correlation (corrected for ties)."""
    sim, real = _paired(sim, real, MIN_AGENTS_CORRELATION)
    _require_variance(sim, real)
    return float(stats.kendalltau(sim, real, variant="b").statistic)


def mmrv(sim: Sequence[float], real: Sequence[float]) -> float:
    """Mean maximum rank violation (SIMPLER, Li et al. 2024); 0 is perfect ordering.

    ``RV(i, j)`` counts when ``(sim_i > sim_j) != (real_i > real_j)``, SIMPLER's released
    convention: a tie in simulation is charged to the agent that is better in reality.
    """
    sim, real = _paired(sim, real, 2)
    wrong_order = (sim[:, None] > sim[None, :]) != (real[:, None] > real[None, :])
    violation = np.abs(real[:, None] - real[None, :]) * wrong_order
    return float(violation.max(axis=1).mean())


def mae(sim: Sequence[float], real: Sequence[float]) -> float:
    """Mean absolute error of sim success as a predictor of real success."""
    sim, real = _paired(sim, real, 1)
    return float(np.abs(sim - real).mean())


def bias(sim: Sequence[float], real: Sequence[float]) -> float:
    """Mean of sim - real: positive when the simulation is optimistic."""
    sim, real = _paired(sim, real, 1)
    return float((sim - real).mean())


AGREEMENT_METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], str]] = {
    "srcc": (pearson, "Pearson correlation of sim and real success across agents (SRCC)"),
    "spearman": (spearman, "Spearman rank correlation across agents"),
    "kendall": (kendall, "Kendall tau-b rank correlation across agents"),
    "mmrv": (mmrv, "mean maximum rank violation (SIMPLER); 0 is perfect, in success-rate units"),
    "mae": (mae, "mean absolute error of sim success as a predictor of real success"),
    "bias": (bias, "mean of sim minus real success; positive = simulation optimistic"),
}


# --- agreement with bootstrap intervals -------------------------------------------------------


@dataclass(frozen=True)
class MetricResult:
    """A metric's value and bootstrap interval, or ``value=None`` and the reason it is undefined."""

    name: str
    description: str
    value: float | None
    low: float | None = None
    high: float | None = None
    reason: str | None = None
    n_agents: int = 0
    bootstrap_defined: float = 0.0  # fraction of bootstrap resamples on which it was defined

    def to_json(self) -> dict:
        return asdict(self)


def agreement(
    sim_outcomes: Mapping[str, Sequence[bool]],
    real_outcomes: Mapping[str, Sequence[bool]],
    n_bootstrap: int = 2000,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, MetricResult]:
    """All agreement metrics across the agents present in both mappings (agent -> 0/1 outcomes).

    The bootstrap resamples each agent's episodes and trials independently (the trials are the
    unit of randomness); an interval is given only when the metric is defined on at least half of
    the resamples, with the fraction recorded.
    """
    agents = [
        a
        for a in sim_outcomes
        if a in real_outcomes and len(sim_outcomes[a]) and len(real_outcomes[a])
    ]
    sims = [np.asarray(sim_outcomes[a], dtype=float) for a in agents]
    reals = [np.asarray(real_outcomes[a], dtype=float) for a in agents]
    sim_rates = np.array([s.mean() for s in sims])
    real_rates = np.array([r.mean() for r in reals])
    rng = np.random.default_rng(seed)
    boot_sim = (
        np.stack([_resampled_means(s, n_bootstrap, rng) for s in sims], axis=1) if agents else None
    )
    boot_real = (
        np.stack([_resampled_means(r, n_bootstrap, rng) for r in reals], axis=1) if agents else None
    )

    results: dict[str, MetricResult] = {}
    alpha = (1 - confidence) / 2
    for name, (function, description) in AGREEMENT_METRICS.items():
        try:
            value = function(sim_rates, real_rates)
        except CannotCompute as why:
            results[name] = MetricResult(
                name, description, None, reason=str(why), n_agents=len(agents)
            )
            continue
        draws = []
        for b in range(n_bootstrap):
            with contextlib.suppress(CannotCompute):
                draws.append(function(boot_sim[b], boot_real[b]))
        defined = len(draws) / n_bootstrap
        low = high = None
        if defined >= 0.5:
            low, high = (float(q) for q in np.quantile(draws, [alpha, 1 - alpha]))
        results[name] = MetricResult(
            name, description, value, low, high, n_agents=len(agents), bootstrap_defined=defined
        )
    return results


def _resampled_means(
    outcomes: np.ndarray, n_bootstrap: int, rng: np.random.Generator
) -> np.ndarray:
    """Means of ``n_bootstrap`` resamples with replacement: binomial draws at the observed rate."""
    return rng.binomial(outcomes.size, outcomes.mean(), size=n_bootstrap) / outcomes.size
