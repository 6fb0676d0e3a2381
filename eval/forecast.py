"""Forecast real success from simulated success: a calibrated sim-to-real mapping in logit space.

With a handful of agents that have real trials, an unregularised regression of real on sim
success would chase noise, so the mapping is a small Bayesian model written out here (a
conjugate Gaussian fit on a grid of one scale parameter; no sampler library needed, and it runs
in milliseconds):

    x_i = logit(sim success of agent i),   y_i = logit(real success of agent i)
    y_i = a + b * x_i + e_i,               e_i ~ N(0, sigma^2)        (agent-to-agent scatter)
    prior: a ~ N(0, 1), b ~ N(1, 0.5^2)   (shrinks toward identity: "sim is right")
           sigma ~ half-normal(0.5)       (how far one agent may stray from the line)

Trial counts enter as measurement noise: each observed rate is an empirical logit
``log((k + 1/2) / (n - k + 1/2))`` with variance ``1/(k + 1/2) + 1/(n - k + 1/2)`` (the binomial
noise of k successes in n trials), added to sigma^2 for y and, scaled by b^2, for x. An agent with
few real trials therefore pulls the line less. For each sigma on a grid the posterior of (a, b)
is Gaussian in closed form; the grid is weighted by prior times marginal likelihood.

A forecast for an agent with only simulated results draws (sigma, a, b), the agent's true sim
logit given its episode count, and the agent's own scatter, then maps through the logistic: the
interval is a prediction interval for the agent's true real success probability.

Leave-one-agent-out validation refits without each agent in turn and asks whether its observed
real rate falls inside the predictive interval of that rate (which adds the binomial noise of
its trials); with fewer than three agents with real trials it says so instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special, stats

PRIOR_MEAN = np.array([0.0, 1.0])  # intercept a, slope b: the identity mapping
PRIOR_SD = np.array([1.0, 0.5])
SIGMA_PRIOR_SCALE = 0.5
SIGMA_GRID = np.linspace(0.0, 2.5, 51)
MIN_AGENTS_FOR_VALIDATION = 3


@dataclass(frozen=True)
class AgentCounts:
    """Successes out of episodes in simulation, and out of trials in reality (0 of 0 if none)."""

    name: str
    sim_successes: int
    sim_n: int
    real_successes: int = 0
    real_n: int = 0

    @property
    def has_real(self) -> bool:
        return self.real_n > 0


def empirical_logit(
    successes: np.ndarray | int, n: np.ndarray | int
) -> tuple[np.ndarray, np.ndarray]:
    """Logit of a binomial rate with the 1/2 correction, and its approximate variance."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    value = np.log((k + 0.5) / (n - k + 0.5))
    variance = 1.0 / (k + 0.5) + 1.0 / (n - k + 0.5)
    return value, variance


@dataclass
class Mapping:
    """The fitted posterior: per sigma on the grid, a weight and a Gaussian over (a, b)."""

    sigmas: np.ndarray  # (G,)
    weights: np.ndarray  # (G,) sum to 1
    means: np.ndarray  # (G, 2)
    covariances: np.ndarray  # (G, 2, 2)
    agents: list[str]  # the agents it was fitted on

    def sample(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` draws of (a, b) as a (count, 2) array and of sigma as (count,)."""
        which = rng.choice(len(self.sigmas), size=count, p=self.weights)
        noise = rng.standard_normal((count, 2))
        chol = np.linalg.cholesky(self.covariances)[which]
        theta = self.means[which] + np.einsum("nij,nj->ni", chol, noise)
        return theta, self.sigmas[which]

    def summary(self) -> dict:
        mean = (self.weights[:, None] * self.means).sum(axis=0)
        return {
            "intercept": float(mean[0]),
            "slope": float(mean[1]),
            "sigma": float((self.weights * self.sigmas).sum()),
            "fitted_on": list(self.agents),
        }


def fit_mapping(agents: Sequence[AgentCounts]) -> Mapping:
    """Posterior of the sim-to-real mapping from the agents that have real trials."""
    used = [a for a in agents if a.has_real and a.sim_n > 0]
    x, vx = empirical_logit([a.sim_successes for a in used], [a.sim_n for a in used])
    y, vy = empirical_logit([a.real_successes for a in used], [a.real_n for a in used])
    design = np.stack([np.ones_like(x), x], axis=1)
    prior_precision = np.diag(1.0 / PRIOR_SD**2)
    prior_cov = np.diag(PRIOR_SD**2)

    slope = PRIOR_MEAN[1]
    for _ in range(3):  # errors in x scale with the slope; a few fixed-point passes settle it
        means, covs, log_evidence = [], [], []
        for sigma in SIGMA_GRID:
            noise = sigma**2 + vy + slope**2 * vx
            precision = prior_precision + design.T @ (design / noise[:, None])
            cov = np.linalg.inv(precision)
            mean = cov @ (prior_precision @ PRIOR_MEAN + design.T @ (y / noise))
            means.append(mean)
            covs.append(cov)
            if len(used):
                marginal_cov = design @ prior_cov @ design.T + np.diag(noise)
                log_evidence.append(
                    stats.multivariate_normal.logpdf(y, design @ PRIOR_MEAN, marginal_cov)
                )
            else:
                log_evidence.append(0.0)
        log_weight = np.array(log_evidence) + stats.halfnorm.logpdf(
            SIGMA_GRID, scale=SIGMA_PRIOR_SCALE
        )
        weights = np.exp(log_weight - special.logsumexp(log_weight))
        means, covs = np.array(means), np.array(covs)
        slope = float((weights * means[:, 1]).sum())
    return Mapping(SIGMA_GRID.copy(), weights, means, covs, [a.name for a in used])


@dataclass(frozen=True)
class Forecast:
    """Forecast real success probability of one agent from its simulated results."""

    agent: str
    sim_rate: float
    median: float
    mean: float
    low: float
    high: float
    confidence: float
    fitted_on: int  # number of agents with real trials behind the mapping

    def to_json(self) -> dict:
        return asdict(self)


def _predictive_logits(
    mapping: Mapping, sim_successes: int, sim_n: int, rng: np.random.Generator, draws: int
) -> np.ndarray:
    theta, sigma = mapping.sample(rng, draws)
    x_hat, vx = empirical_logit(sim_successes, sim_n)
    x = x_hat + np.sqrt(vx) * rng.standard_normal(draws)
    return theta[:, 0] + theta[:, 1] * x + sigma * rng.standard_normal(draws)


def forecast(
    mapping: Mapping,
    agent: AgentCounts,
    confidence: float = 0.95,
    draws: int = 4000,
    seed: int = 0,
) -> Forecast:
    """Prediction of the agent's real success probability with a ``confidence`` interval."""
    if agent.sim_n <= 0:
        raise ValueError(f"agent {agent.name!r} has no simulated episodes to forecast from")
    rng = np.random.default_rng(seed)
    p = special.expit(_predictive_logits(mapping, agent.sim_successes, agent.sim_n, rng, draws))
    alpha = (1 - confidence) / 2
    low, median, high = np.quantile(p, [alpha, 0.5, 1 - alpha])
    return Forecast(
        agent=agent.name,
        sim_rate=agent.sim_successes / agent.sim_n,
        median=float(median),
        mean=float(p.mean()),
        low=float(low),
        high=float(high),
        confidence=confidence,
        fitted_on=len(mapping.agents),
    )


def mapping_curve(
    mapping: Mapping,
    sim_rates: np.ndarray,
    confidence: float = 0.95,
    draws: int = 2000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The fitted curve real = f(sim) with a band for the line and a wider one with scatter."""
    rng = np.random.default_rng(seed)
    theta, sigma = mapping.sample(rng, draws)
    x = special.logit(np.clip(np.asarray(sim_rates, dtype=float), 1e-4, 1 - 1e-4))
    line = theta[:, :1] + theta[:, 1:] * x[None, :]
    scattered = line + sigma[:, None] * rng.standard_normal(line.shape)
    alpha = (1 - confidence) / 2
    line_q = special.expit(np.quantile(line, [alpha, 0.5, 1 - alpha], axis=0))
    pred_q = special.expit(np.quantile(scattered, [alpha, 1 - alpha], axis=0))
    return {
        "sim": np.asarray(sim_rates, dtype=float),
        "median": line_q[1],
        "line_low": line_q[0],
        "line_high": line_q[2],
        "prediction_low": pred_q[0],
        "prediction_high": pred_q[1],
    }


@dataclass(frozen=True)
class HeldOut:
    """One leave-one-agent-out check: forecast from the others vs the agent's observed trials."""

    agent: str
    sim_rate: float
    observed_rate: float
    trials: int
    forecast: float
    low: float  # predictive interval of the observed rate (adds the trials' binomial noise)
    high: float
    inside: bool


@dataclass(frozen=True)
class Validation:
    """Leave-one-agent-out results, or the reason there are none."""

    held_out: list[HeldOut]
    reason: str | None = None
    confidence: float = 0.95

    @property
    def coverage(self) -> float | None:
        return float(np.mean([h.inside for h in self.held_out])) if self.held_out else None

    @property
    def forecast_mae(self) -> float | None:
        return (
            float(np.mean([abs(h.forecast - h.observed_rate) for h in self.held_out]))
            if self.held_out
            else None
        )

    @property
    def raw_sim_mae(self) -> float | None:
        """The baseline: sim success taken as the forecast of real success unchanged."""
        return (
            float(np.mean([abs(h.sim_rate - h.observed_rate) for h in self.held_out]))
            if self.held_out
            else None
        )

    def to_json(self) -> dict:
        return {
            "reason": self.reason,
            "confidence": self.confidence,
            "coverage": self.coverage,
            "forecast_mae": self.forecast_mae,
            "raw_sim_mae": self.raw_sim_mae,
            "held_out": [asdict(h) for h in self.held_out],
        }


def leave_one_agent_out(
    agents: Sequence[AgentCounts], confidence: float = 0.95, draws: int = 4000, seed: int = 0
) -> Validation:
    """Refit without each agent with real trials and check its observed rate against the forecast."""
    with_real = [a for a in agents if a.has_real and a.sim_n > 0]
    if len(with_real) < MIN_AGENTS_FOR_VALIDATION:
        return Validation(
            [],
            reason=f"too few agents with real trials to validate the forecast: {len(with_real)} "
            f"(leave-one-agent-out needs at least {MIN_AGENTS_FOR_VALIDATION})",
            confidence=confidence,
        )
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    held_out = []
    for agent in with_real:
        mapping = fit_mapping([a for a in with_real if a is not agent])
        p = special.expit(_predictive_logits(mapping, agent.sim_successes, agent.sim_n, rng, draws))
        observed_draws = rng.binomial(agent.real_n, p) / agent.real_n
        low, high = np.quantile(observed_draws, [alpha, 1 - alpha])
        observed = agent.real_successes / agent.real_n
        held_out.append(
            HeldOut(
                agent=agent.name,
                sim_rate=agent.sim_successes / agent.sim_n,
                observed_rate=observed,
                trials=agent.real_n,
                forecast=float(np.median(p)),
                low=float(low),
                high=float(high),
                inside=bool(low <= observed <= high),
            )
        )
    return Validation(held_out, confidence=confidence)
