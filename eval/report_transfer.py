"""The report's section "Camera transfer": the same agent evaluated under two simulator cameras.

An agent trained with one camera (the fast baked texture, say) and evaluated with another (the
radiance field) meets images it never saw in training; the drop in success is a sim-to-sim
check of how much the agent leans on what one camera draws and the other does not, a lower
bound of sorts on what the camera-to-reality gap may cost. A campaign holds such a pair when a
run folder is named twice, once as ``RUN@RENDERER`` (``eval.rollouts.agent_specs``): both
entries share the run folder (their ``source``) and differ in renderer.

Per run folder evaluated under two or more renderers: each renderer's success over the episodes
(Wilson interval), and each other renderer's gap to the first one listed, on the episodes
(condition, seed) both ran, with a Newcombe hybrid-score interval for the difference of two
proportions (Newcombe 1998, ``statsmodels``). The episodes are paired (same seeds, same tasks);
the interval treats them as independent, which makes it wider, never narrower, than a paired
one for positively correlated outcomes. ``camera_transfer`` returns the JSON-ready rows (the
summary.json key ``camera_transfer``), or None when no agent was evaluated under two renderers;
the template ``assets/report/report_transfer.html.j2`` renders them.
"""

from __future__ import annotations

from typing import Any

from statsmodels.stats.proportion import confint_proportions_2indep

from eval import metrics


def agent_renderers(campaign) -> dict[str, str]:
    """Each agent's camera: its own (``RUN@RENDERER``) or the campaign's renderer."""
    default = campaign.meta.get("renderer", "mesh")
    own = campaign.meta.get("agent_renderers") or {}
    return {agent: own.get(agent, default) for agent in campaign.finished_agents}


def _outcomes(campaign, agent: str) -> dict[tuple[str, int], bool]:
    return {
        (r["condition"], r["seed"]): bool(r["success"])
        for r in campaign.records
        if r["agent"] == agent
    }


def _gap(reference: dict, other: dict, confidence: float) -> dict[str, Any]:
    """``other`` minus ``reference`` success on the episodes both ran, with its interval."""
    shared = sorted(set(reference) & set(other))
    n = len(shared)
    k_ref, k_other = sum(reference[e] for e in shared), sum(other[e] for e in shared)
    if n == 0:
        return {"episodes": 0, "value": None, "low": None, "high": None}
    low, high = confint_proportions_2indep(
        k_other, n, k_ref, n, method="newcomb", compare="diff", alpha=1 - confidence
    )
    return {"episodes": n, "value": (k_other - k_ref) / n, "low": float(low), "high": float(high)}


def camera_transfer(campaign, confidence: float = 0.95) -> list[dict[str, Any]] | None:
    """One entry per run folder evaluated under several renderers (None when there is none)."""
    renderers = agent_renderers(campaign)
    groups: dict[str, list[str]] = {}
    for agent in renderers:
        groups.setdefault(str(campaign.meta["agents"][agent]), []).append(agent)
    entries = []
    for source, agents in groups.items():
        if len({renderers[a] for a in agents}) < 2:
            continue
        outcomes = {agent: _outcomes(campaign, agent) for agent in agents}
        reference = agents[0]
        rows = []
        for agent in agents:
            rate = metrics.rate(list(outcomes[agent].values()), confidence).to_json()
            row = {"agent": agent, "renderer": renderers[agent], "success": rate, "gap": None}
            if agent != reference:
                row["gap"] = _gap(outcomes[reference], outcomes[agent], confidence)
            rows.append(row)
        entries.append({"source": source, "reference": reference, "rows": rows})
    return entries or None
