"""How many more real trials bring an agent's interval to a given width, with and without the sim.

Per agent (pooled over the trial log's conditions) and per agent and condition: the width of its
interval is projected for more trials of the same kind, keeping today's estimate and variances:
the Wilson interval of the real trials alone, and the prediction-powered interval of ``eval.ppi``
(new trials paired with simulated episodes, as today's are). When the simulation does not help
(``eval.ppi.judge``), both answers are the real-only one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from eval.ppi import (
    Pairs,
    Verdict,
    judge,
    pair_trials,
    projected_width,
    share_prior,
    wilson,
)

MAX_TRIALS = 5000  # past this the planner says "more than 5000"


@dataclass(frozen=True)
class TrialPlan:
    """One row of the plan: an agent (and condition, or all of its conditions)."""

    agent: str
    condition: str | None
    trials: int
    successes: int
    width_real_only: float
    width_with_sim: float | None
    more_real_only: int | None  # None: more than MAX_TRIALS
    more_with_sim: int | None
    sim_used: bool

    def to_json(self) -> dict:
        return asdict(self)

    def sentence(self, width: float) -> str:
        """'run 14 more trials of ppo in dim (42 without the simulation)' and the like."""
        where = f" in {self.condition}" if self.condition else " (any condition)"
        target = f"{100 * width:.0f} points"

        def count(more: int | None) -> str:
            return f"more than {MAX_TRIALS}" if more is None else str(more)

        if self.sim_used:
            main, other = self.more_with_sim, self.more_real_only
            if main == 0:
                return f"{self.agent}{where}: already within {target} with the simulation"
            return (
                f"run {count(main)} more trials of {self.agent}{where} to bring its interval to "
                f"{target} ({count(other)} without the simulation)"
            )
        if self.more_real_only == 0:
            return f"{self.agent}{where}: already within {target}"
        return (
            f"run {count(self.more_real_only)} more trials of {self.agent}{where} to bring its "
            f"interval to {target}"
        )


def _first_reaching(widths: np.ndarray, trials: np.ndarray, width: float, now: int) -> int | None:
    reached = np.nonzero(widths <= width)[0]
    return None if reached.size == 0 else max(0, int(trials[reached[0]]) - now)


def plan_for(pairs: Pairs, width: float, confidence: float, use_sim: bool) -> TrialPlan:
    """Project one agent's (or agent and condition's) interval width over more trials."""
    n, k = pairs.real.size, int(pairs.real.sum())
    trials = np.arange(n, MAX_TRIALS + 1)
    p = k / n
    low, high = wilson(np.full(trials.shape, p), trials, confidence)
    real_only = _first_reaching(high - low, trials, width, n)
    width_now = float(high[0] - low[0])
    width_sim = more_sim = None
    sim_used = use_sim and pairs.unpaired_sim.size > 0
    if sim_used:
        # the estimator can always fall back to the real trials alone (weight 0)
        widths = np.minimum(
            projected_width(pairs.estimates(confidence), trials, confidence), high - low
        )
        width_sim, more_sim = float(widths[0]), _first_reaching(widths, trials, width, n)
    return TrialPlan(
        agent=pairs.agent,
        condition=pairs.condition,
        trials=n,
        successes=k,
        width_real_only=width_now,
        width_with_sim=width_sim,
        more_real_only=real_only,
        more_with_sim=more_sim if sim_used else real_only,
        sim_used=sim_used,
    )


def plan_trials(
    campaign, trials, width: float = 0.10, confidence: float = 0.95
) -> tuple[Verdict, list[TrialPlan]]:
    """The verdict on the simulation and a plan row per agent, then per agent and condition."""
    if not 0 < width < 1:
        raise ValueError(f"width must be between 0 and 1, got {width}")
    conditions = trials.conditions
    pooled = [pair_trials(campaign, trials, agent, conditions) for agent in campaign.agents]
    pooled = [p for p in share_prior(pooled) if p is not None]
    prior = pooled[0].pseudo if pooled else None
    verdict = judge([(p.real, p.paired_sim) for p in pooled], all(p.by_seed for p in pooled))
    rows = [plan_for(p, width, confidence, verdict.helps) for p in pooled]
    for agent in campaign.agents:
        for condition in conditions:
            pairs = pair_trials(campaign, trials, agent, [condition])
            if pairs is not None and len(conditions) > 1:
                pairs = replace(pairs, pseudo=prior)
                rows.append(plan_for(pairs, width, confidence, verdict.helps))
    return verdict, rows
