"""Prediction-powered estimates of an agent's real success: many simulated episodes, few real trials.

Prediction-powered inference (PPI; Angelopoulos et al., Science 2023) with power tuning (PPI++,
Angelopoulos, Duchi and Zrnic 2023), applied to robot evaluation as in SureSim (Badithela et al.,
arXiv 2510.04354): a real trial run on the same episode (condition and seed: same start and goal)
as a simulated one is a *paired* trial; the simulated episodes without a real counterpart are the
cheap, plentiful predictions. With real outcomes ``Y``, the simulated outcomes ``H`` of the same
episodes and the ``N`` unpaired simulated outcomes ``U``::

    estimate = lam * mean(U) + mean(Y - lam * H)

The second term corrects the simulation's bias on the trials that have both; ``lam`` in [0, 1]
(``Cov(Y, H) / ((1 + n/N) Var(H))``, the PPI++ choice) weighs the simulation by how well it tracks
reality, so the estimate falls back to the real trials alone (``lam = 0``) when the two do not
correlate. The point estimate is ``ppi_py.ppi_mean_pointestimate`` on the trials as run.

Small-sample interval: the PPI confidence interval is a normal one, and with 10-30 binary trials
it under-covers (a handful of trials that happen to agree with the simulation make its variance
look like zero, and near 0% or 100% the normal interval is too symmetric). Two corrections keep
95% intervals within 93-97% on the synthetic campaigns of tests/eval. The paired table gets
pseudo-trials in its two discordant cells (sim success with real failure, and the reverse; in
the spirit of Agresti and Min 2005 for paired proportions) before its variance is estimated,
as many as an empirical-Bayes prior pooled over the campaign's agents suggests
(``discordance_prior``: ``PRIOR_TRIALS`` trials at the pooled rate of each kind of
disagreement, at least ``PSEUDO_FLOOR``). A fixed count cannot be right everywhere: an agent
whose few trials all agree with an unbiased simulation needs little, one whose simulation is
biased needs enough to keep the bias inside the interval, and only the other agents' trials tell
the two apart. And the interval is the Wilson interval at the estimate's effective number of
trials (``p(1 - p) / se^2``, as survey statistics do for weighted samples), which keeps it
inside [0, 1] and honest near the ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from ppi_py import ppi_mean_pointestimate
from statsmodels.stats.proportion import proportion_confint

PRIOR_TRIALS = 12.0  # weight of the pooled discordance prior, in trials (chosen on tests/eval)
PSEUDO_FLOOR = 0.22  # fewest pseudo-trials per discordant cell (chosen on tests/eval campaigns)
MIN_AGENTS = 3  # agents with paired trials needed before trusting the sim-real correlation
MIN_CORRELATION = 0.3  # power tuning scales the variance by 1 - rho^2: below 0.3 it saves under 10%


@dataclass(frozen=True)
class Estimates:
    """Batched prediction-powered estimates; every field has the batch's shape."""

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    lam: np.ndarray  # weight given to the simulation, 0 = real trials alone
    effective_trials: np.ndarray  # real trials alone that would give the same precision
    moments: Moments  # what the interval was computed from (the planner projects with them)


@dataclass(frozen=True)
class Moments:
    """Per-trial variances behind an estimate (pseudo-trials and condition weights included)."""

    real_variance: np.ndarray  # of Y on the paired trials
    covariance: np.ndarray  # of Y and H on the paired trials
    paired_sim_variance: np.ndarray  # of H on the paired trials
    sim_variance: np.ndarray  # of the simulated outcomes, paired and unpaired
    unpaired_variance: np.ndarray  # of the weighted unpaired outcomes
    unpaired: int  # N, the unpaired episodes

    def lam(self, trials: int | np.ndarray) -> np.ndarray:
        """The PPI++ weight of the simulation for ``trials`` paired trials, in [0, 1]."""
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = self.covariance / ((1 + trials / self.unpaired) * self.sim_variance)
        return np.clip(np.nan_to_num(lam, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)

    def se2(self, lam: np.ndarray, trials: int | np.ndarray) -> np.ndarray:
        """Variance of the estimate with weight ``lam`` over ``trials`` paired trials."""
        rectifier = (
            self.real_variance - 2 * lam * self.covariance + lam**2 * self.paired_sim_variance
        )
        return lam**2 * self.unpaired_variance / self.unpaired + np.maximum(rectifier, 0) / trials


def _weighted_moments(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    total = weights.sum(axis=-1)
    mean = (values * weights).sum(axis=-1) / total
    variance = (((values - mean[..., None]) ** 2) * weights).sum(axis=-1) / total
    return mean, variance


def wilson(p: np.ndarray, n: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson interval of a rate ``p`` over ``n`` (possibly effective, non-integer) trials."""
    p, n = (np.array(a, dtype=float) for a in np.broadcast_arrays(p, n))
    low, high = proportion_confint(p * n, n, alpha=1 - confidence, method="wilson")
    return np.asarray(low, float), np.asarray(high, float)


def discordance_prior(real: np.ndarray, paired_sim: np.ndarray) -> tuple[float, float]:
    """Pseudo-trials for the two discordant cells, from the discordance pooled over the batch.

    ``PRIOR_TRIALS`` trials' worth of the batch's (all agents') rate of sim success with real
    failure, and of the reverse, each at least ``PSEUDO_FLOOR``.
    """
    real, paired_sim = np.asarray(real, float), np.asarray(paired_sim, float)
    if real.size == 0:
        return PSEUDO_FLOOR, PSEUDO_FLOOR
    sim_only = float(np.mean(paired_sim * (1 - real)))
    real_only = float(np.mean(real * (1 - paired_sim)))
    return (
        max(PRIOR_TRIALS * sim_only, PSEUDO_FLOOR),
        max(PRIOR_TRIALS * real_only, PSEUDO_FLOOR),
    )


def grouped_priors(real: np.ndarray, paired_sim: np.ndarray, group: int) -> np.ndarray:
    """``discordance_prior`` per run of ``group`` consecutive rows (one campaign's agents), as
    one (B, 2) array: how benchmarks and tests evaluate many campaigns in one batch."""
    real, paired_sim = np.asarray(real, float), np.asarray(paired_sim, float)
    shape = (real.shape[0] // group, -1)
    sim_only = np.mean((paired_sim * (1 - real)).reshape(shape), axis=1)
    real_only = np.mean((real * (1 - paired_sim)).reshape(shape), axis=1)
    prior = np.maximum(PRIOR_TRIALS * np.stack([sim_only, real_only], axis=1), PSEUDO_FLOOR)
    return np.repeat(prior, group, axis=0)


def ppi_mean(
    real: np.ndarray,
    paired_sim: np.ndarray,
    unpaired_sim: np.ndarray,
    confidence: float = 0.95,
    unpaired_weights: np.ndarray | None = None,
    pseudo: tuple[float, float] | np.ndarray | None = None,
) -> Estimates:
    """Estimates for a batch: ``real`` and ``paired_sim`` (B, n), ``unpaired_sim`` (B, N).

    ``unpaired_weights`` (N,) reweights the unpaired episodes to the real trials' mix of
    conditions (importance weights, normalised by ppi_py). ``pseudo``: the pseudo-trials in the
    two discordant cells (sim success with real failure, the reverse), shape (2,) or (B, 2);
    default ``discordance_prior`` of the whole batch. Needs n >= 1 and N >= 1.
    """
    real, paired_sim = np.atleast_2d(real).astype(float), np.atleast_2d(paired_sim).astype(float)
    unpaired_sim = np.atleast_2d(unpaired_sim).astype(float)
    batch, n = real.shape
    big_n = unpaired_sim.shape[1]
    if n < 1 or big_n < 1 or paired_sim.shape != real.shape:
        raise ValueError(
            f"need paired (B, n>=1) and unpaired (B, N>=1) arrays, got "
            f"{real.shape}, {paired_sim.shape}, {unpaired_sim.shape}"
        )
    y = np.concatenate([real, np.zeros((batch, 1)), np.ones((batch, 1))], axis=1)
    h = np.concatenate([paired_sim, np.ones((batch, 1)), np.zeros((batch, 1))], axis=1)
    pseudo = np.asarray(discordance_prior(real, paired_sim) if pseudo is None else pseudo, float)
    ones = np.ones(pseudo.shape[:-1] + (n,))
    w = np.concatenate([ones, pseudo], axis=-1)  # (n + 2,), or (B, n + 2) for a prior per row
    mean_y, real_variance = _weighted_moments(y, w)
    mean_h, paired_sim_variance = _weighted_moments(h, w)
    wu = np.ones(big_n) if unpaired_weights is None else np.asarray(unpaired_weights, float)
    moments = Moments(
        real_variance=real_variance,
        covariance=((y - mean_y[:, None]) * (h - mean_h[:, None]) * w).sum(axis=1) / w.sum(axis=-1),
        paired_sim_variance=paired_sim_variance,
        sim_variance=np.concatenate([paired_sim, unpaired_sim], axis=1).var(axis=1),
        unpaired_variance=(unpaired_sim * wu / wu.mean()).var(axis=1),
        unpaired=big_n,
    )
    lam = moments.lam(n)
    # the pseudo-trials widen the interval only: the estimate is ppi_py's on the trials as run
    # (with the simulation's weight 0 it is the real trials' own success rate)
    estimate = np.atleast_1d(
        ppi_mean_pointestimate(real.T, paired_sim.T, unpaired_sim.T, lam=lam, w_unlabeled=wu)
    ).astype(float)
    estimate = np.clip(estimate, 0.0, 1.0)
    low, high, effective = _wilson_at_effective_n(estimate, moments.se2(lam, n), n, confidence)
    return Estimates(estimate, low, high, lam, effective, moments)


def _wilson_at_effective_n(
    estimate: np.ndarray, se2: np.ndarray, n: int | np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wilson interval at the effective trial count ``p(1 - p) / se^2`` (p kept off 0 and 1)."""
    kept = (estimate * n + 0.5) / (n + 1)
    effective = kept * (1 - kept) / np.maximum(se2, 1e-12)
    low, high = wilson(estimate, effective, confidence)
    return low, high, effective


def projected_width(estimates: Estimates, trials: np.ndarray, confidence: float) -> np.ndarray:
    """Interval width of a single estimate if it had ``trials`` paired trials, the weight of the
    simulation re-tuned for each count (it shrinks as real trials outnumber the simulation)."""
    m = estimates.moments
    one = Moments(
        m.real_variance[0],
        m.covariance[0],
        m.paired_sim_variance[0],
        m.sim_variance[0],
        m.unpaired_variance[0],
        m.unpaired,
    )
    lam = one.lam(trials)
    low, high, _ = _wilson_at_effective_n(
        np.full(np.shape(trials), estimates.estimate[0]), one.se2(lam, trials), trials, confidence
    )
    return high - low


def pooled_correlation(groups: Sequence[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """Pearson correlation of real and paired simulated outcomes, each agent centred on its own
    means (so that agents differing in skill do not make the simulation look predictive)."""
    real = [np.asarray(r, float) - np.mean(r) for r, _ in groups if len(r)]
    sim = [np.asarray(s, float) - np.mean(s) for r, s in groups if len(r)]
    if not real:
        return None
    real, sim = np.concatenate(real), np.concatenate(sim)
    if real.std() == 0 or sim.std() == 0:
        return None
    return float(np.clip(np.corrcoef(real, sim)[0, 1], -1.0, 1.0))


@dataclass(frozen=True)
class Verdict:
    """Whether the simulation helps estimate real success here, and why (shown in the report)."""

    helps: bool
    reason: str
    correlation: float | None
    agents: int
    paired_trials: int

    def to_json(self) -> dict:
        return {
            "helps": self.helps,
            "reason": self.reason,
            "correlation": self.correlation,
            "agents": self.agents,
            "paired_trials": self.paired_trials,
        }


def judge(groups: Sequence[tuple[np.ndarray, np.ndarray]], by_seed: bool = True) -> Verdict:
    """Does the simulation help? ``groups``: per agent, (real outcomes, paired sim outcomes).

    It helps when at least ``MIN_AGENTS`` agents have paired trials and the pooled within-agent
    correlation of real and simulated outcomes is at least ``MIN_CORRELATION``; otherwise the
    report keeps real-only intervals and says why. ``by_seed``: whether trials were paired with
    their simulated episode (seed) rather than only with their condition.
    """
    used = [(r, s) for r, s in groups if len(r) >= 2]
    trials = int(sum(len(r) for r, _ in used))
    correlation = pooled_correlation(used)
    if len(used) < MIN_AGENTS:
        return Verdict(
            False,
            f"only {len(used)} agent(s) have at least 2 real trials paired with simulated "
            f"episodes; at least {MIN_AGENTS} are needed to check that the simulation tracks "
            "reality",
            correlation,
            len(used),
            trials,
        )
    if correlation is None or correlation < MIN_CORRELATION:
        shown = (
            "cannot be measured (no variation)" if correlation is None else f"is {correlation:.2f}"
        )
        hint = (
            ""
            if by_seed
            else "; the real trials are paired only with their condition's simulated rate (the "
            "trial log has no seed column, or names seeds that were not simulated): record the "
            "seed of the simulated episode each real trial reproduces"
        )
        return Verdict(
            False,
            f"the correlation of real and simulated outcomes on paired trials {shown} (below "
            f"{MIN_CORRELATION} the simulation saves under 10% of real trials){hint}",
            correlation,
            len(used),
            trials,
        )
    return Verdict(
        True,
        f"real and simulated outcomes correlate at {correlation:.2f} on {trials} paired trials "
        f"of {len(used)} agents",
        correlation,
        len(used),
        trials,
    )


# --- pairing real trials with simulated episodes ------------------------------------------------


@dataclass(frozen=True)
class Pairs:
    """One agent's real trials, each with the simulated outcome it is paired with, and the
    simulated episodes left unpaired (under the same conditions)."""

    agent: str
    condition: str | None  # None: pooled over the conditions of its trials
    real: np.ndarray
    paired_sim: np.ndarray
    unpaired_sim: np.ndarray
    unpaired_weights: np.ndarray  # reweights the unpaired episodes to the trials' conditions
    by_seed: bool  # paired with the episode of the same seed, else with the condition's rate
    pseudo: tuple[float, float] | None = None  # discordance prior (``share_prior``); None: own

    def estimates(self, confidence: float = 0.95) -> Estimates:
        return ppi_mean(
            self.real[None],
            self.paired_sim[None],
            self.unpaired_sim[None],
            confidence,
            self.unpaired_weights,
            self.pseudo,
        )


def share_prior(pairs: Sequence[Pairs | None]) -> list[Pairs | None]:
    """The agents' pairs, each with the discordance prior pooled over all of them."""
    kept = [p for p in pairs if p is not None]
    if not kept:
        return list(pairs)
    prior = discordance_prior(
        np.concatenate([p.real for p in kept]), np.concatenate([p.paired_sim for p in kept])
    )
    return [None if p is None else replace(p, pseudo=prior) for p in pairs]


def _seed(trial) -> int | None:
    text = trial.extra.get("seed", "").strip()
    try:
        return int(text)
    except ValueError:
        return None


def pair_trials(campaign, trials, agent: str, conditions: Sequence[str]) -> Pairs | None:
    """Pair ``agent``'s real trials under ``conditions`` with its simulated episodes.

    A trial log with a ``seed`` column (the simulated episode each real trial reproduced: same
    condition, start and goal) pairs trial and episode one to one; without it, or when a seed was
    not simulated, each trial is paired with its condition's simulated success rate, which helps
    little. None when the agent has no trials there or a condition has no unpaired episodes.
    """
    chosen = [t for t in trials.trials if t.agent == agent and t.condition in conditions]
    sim = {
        (r["condition"], int(r["seed"])): float(r["success"])
        for r in campaign.records
        if r["agent"] == agent and r["condition"] in conditions
    }
    if not chosen:
        return None
    keys = [(t.condition, _seed(t)) for t in chosen]
    by_seed = all(key in sim for key in keys)
    if by_seed:
        paired = np.array([sim[key] for key in keys])
        unpaired_keys = [key for key in sim if key not in set(keys)]
    else:
        rates = {}
        for condition in {t.condition for t in chosen}:
            outcomes = [v for (c, _), v in sim.items() if c == condition]
            if not outcomes:
                return None
            rates[condition] = float(np.mean(outcomes))
        paired = np.array([rates[t.condition] for t in chosen])
        unpaired_keys = list(sim)
    trial_share = {c: sum(t.condition == c for t in chosen) / len(chosen) for c, _ in keys}
    unpaired_keys = [k for k in unpaired_keys if k[0] in trial_share]
    episode_share = {
        c: sum(k[0] == c for k in unpaired_keys) / max(len(unpaired_keys), 1) for c in trial_share
    }
    if any(share == 0 for share in episode_share.values()):
        return None
    return Pairs(
        agent=agent,
        condition=conditions[0] if len(conditions) == 1 else None,
        real=np.array([float(t.success) for t in chosen]),
        paired_sim=paired,
        unpaired_sim=np.array([sim[k] for k in unpaired_keys]),
        unpaired_weights=np.array([trial_share[c] / episode_share[c] for c, _ in unpaired_keys]),
        by_seed=by_seed,
    )
