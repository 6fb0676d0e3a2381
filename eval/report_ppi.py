"""The report's section "Fewer real trials": prediction-powered estimates and the trial planner.

Per agent with real trials: the real-only Wilson interval, the current forecast (the mapping fitted
on the other agents, ``eval.forecast``) and the prediction-powered estimate (``eval.ppi``), with the
interval the report stands behind: the prediction-powered one when the simulation helps, the
real-only one when it does not (and the section says why). Then the planner's advice for the
target width. ``prediction_powered`` returns the JSON-ready numbers (summary.json key
``prediction_powered``); the template ``assets/report/report.html.j2`` renders them.
"""

from __future__ import annotations

from typing import Any

from eval.planner import plan_trials
from eval.ppi import pair_trials, share_prior, wilson

TARGET_WIDTH = 0.10  # the planner's target interval width in the report (10 points)


def _agent_row(pairs, forecast: dict | None, confidence: float, helps: bool) -> dict[str, Any]:
    n, k = pairs.real.size, int(pairs.real.sum())
    low, high = wilson(k / n, n, confidence)
    row: dict[str, Any] = {
        "agent": pairs.agent,
        "real": {"value": k / n, "successes": k, "n": n, "low": float(low), "high": float(high)},
        "forecast": forecast,
        "paired_by": "seed" if pairs.by_seed else "condition",
        "sim_episodes": int(pairs.unpaired_sim.size),
        "ppi": None,
    }
    if pairs.unpaired_sim.size:
        e = pairs.estimates(confidence)
        row["ppi"] = {
            "value": float(e.estimate[0]),
            "low": float(e.low[0]),
            "high": float(e.high[0]),
            "sim_weight": float(e.lam[0]),
            "worth_trials": float(e.effective_trials[0]),
        }
    shown = row["ppi"] if helps and row["ppi"] else row["real"]
    row["shown"] = {"value": shown["value"], "low": shown["low"], "high": shown["high"]}
    row["shown_from"] = "prediction-powered" if shown is row["ppi"] else "real trials only"
    return row


def prediction_powered(
    campaign, trials, forecasts: list[dict], confidence: float = 0.95, width: float = TARGET_WIDTH
) -> dict[str, Any]:
    """The section's numbers; ``forecasts`` are the summary's (agent, forecast) rows."""
    if trials is None:
        return {"skipped": "no real trials given (pass --real TRIALS.csv)"}
    verdict, plan = plan_trials(campaign, trials, width, confidence)
    by_agent = {f["agent"]: f.get("forecast") for f in forecasts}
    rows = []
    every = [pair_trials(campaign, trials, agent, trials.conditions) for agent in campaign.agents]
    for pairs in share_prior(every):
        if pairs is not None:
            rows.append(_agent_row(pairs, by_agent.get(pairs.agent), confidence, verdict.helps))
    return {
        "verdict": verdict.to_json(),
        "confidence": confidence,
        "target_width": width,
        "agents": rows,
        "plan": [p.to_json() for p in plan],
        "advice": [p.sentence(width) for p in plan if p.condition is not None]
        or [p.sentence(width) for p in plan],
    }
