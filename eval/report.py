"""The report: simulated campaign + real trial log -> forecasts, agreement, figures, report.html.

``write_report`` checks that the inputs belong together (the campaign ran on the given scene;
every agent and condition of the trial log was simulated), computes everything into one
``summary`` dict (also written as summary.json), draws the figures and renders the Jinja2
template ``assets/report/report.html.j2`` into one self-contained HTML file. The report folder is
written atomically and an existing one is replaced only with ``overwrite``.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import atomic_path
from common.errors import DriveEnvError
from eval import metrics, plots
from eval.errors import CampaignError, EvalError
from eval.forecast import AgentCounts, fit_mapping, forecast, leave_one_agent_out, mapping_curve
from eval.real_logs import TrialLog, load_trials
from eval.report_ppi import prediction_powered
from eval.rollouts import Campaign, load_campaign

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "assets" / "report"
TEMPLATE_NAME = "report.html.j2"
MAX_TRAJECTORIES_PER_AGENT = 20


@dataclass
class ReportConfig:
    """Inputs and options of ``driveenv report`` (see ``eval.cli``)."""

    sim: str | Path
    scene: str | Path
    out: str | Path
    real: str | Path | None = None
    seed: int = 0
    n_bootstrap: int = 2000
    confidence: float = 0.95
    fidelity: bool = True
    fidelity_frames: int = 4
    overwrite: bool = False


def check_conditions(campaign: Campaign, trials: TrialLog) -> None:
    """Every condition of the trial log must have been simulated."""
    missing = [c for c in trials.conditions if c not in campaign.conditions]
    if missing:
        raise CampaignError(
            f"{trials.path}: condition(s) {', '.join(missing)} were not simulated in "
            f"{campaign.root} (it has {', '.join(campaign.conditions)}); run 'driveenv evaluate' "
            f"with --lighting {','.join(campaign.conditions + missing)}"
        )


def _rate_json(outcomes: np.ndarray, confidence: float) -> dict | None:
    return metrics.rate(outcomes, confidence).to_json() if outcomes.size else None


def _condition_row(campaign: Campaign, agent: str, condition: str, real_trials, confidence: float):
    def sim_rate(key: str) -> dict | None:
        return _rate_json(campaign.outcomes(agent, condition, key), confidence)

    return {
        "agent": agent,
        "condition": condition,
        "sim": sim_rate("success"),
        "sim_collision": sim_rate("collision"),
        "sim_off_road": sim_rate("off_road"),
        "sim_route_completion": float(
            campaign.outcomes(agent, condition, "route_completion").mean()
        ),
        "real": _rate_json(np.array([t.success for t in real_trials]), confidence),
        "real_collision": _rate_json(np.array([t.collision for t in real_trials]), confidence),
    }


def build_summary(
    campaign: Campaign, trials: TrialLog | None, config: ReportConfig
) -> dict[str, Any]:
    """All numbers of the report (JSON-ready).

    Sim and real success are compared per agent pooled over the conditions of the trial log
    (all simulated conditions when there is none). Every forecast of an agent uses the mapping
    fitted on the *other* agents with real trials, so its own trials never vouch for it.
    """
    if not campaign.records:
        raise CampaignError(
            f"{campaign.root}: no finished episodes yet; run 'driveenv evaluate' first"
        )
    agents = campaign.finished_agents
    conditions = campaign.conditions
    real: dict[tuple[str, str], list] = {}
    if trials is not None:
        check_conditions(campaign, trials)
        for t in trials.trials:
            real.setdefault((t.agent, t.condition), []).append(t)
    pooled = trials.conditions if trials is not None else conditions

    sim_outcomes = {
        a: np.concatenate([campaign.outcomes(a, c) for c in pooled]).astype(bool) for a in agents
    }
    real_outcomes = {
        a: np.array([t.success for c in pooled for t in real.get((a, c), [])], dtype=bool)
        for a in agents
    }
    agreement = metrics.agreement(
        sim_outcomes,
        real_outcomes,
        n_bootstrap=config.n_bootstrap,
        seed=config.seed,
        confidence=config.confidence,
    )
    counts = {
        a: AgentCounts(
            a,
            int(sim_outcomes[a].sum()),
            sim_outcomes[a].size,
            int(real_outcomes[a].sum()),
            real_outcomes[a].size,
        )
        for a in agents
    }
    mapping = fit_mapping(list(counts.values()))
    without = {
        a: fit_mapping([c for c in counts.values() if c is not counts[a]])
        if c.has_real
        else mapping
        for a, c in counts.items()
    }

    def predict(agent: str, successes: int, n: int, seed: int) -> dict:
        target = AgentCounts(agent, successes, n)
        return forecast(without[agent], target, confidence=config.confidence, seed=seed).to_json()

    per_condition = []
    for agent in agents:
        for condition in conditions:
            sim = campaign.outcomes(agent, condition)
            if sim.size:
                row = _condition_row(
                    campaign, agent, condition, real.get((agent, condition), []), config.confidence
                )
                row["forecast"] = predict(
                    agent, int(sim.sum()), sim.size, config.seed + len(per_condition)
                )
                per_condition.append(row)

    forecasts = []
    for i, (agent, count) in enumerate(counts.items()):
        if not count.sim_n:  # a resumed campaign without episodes under the log's conditions yet
            continue
        others = "other " if count.has_real else ""
        fitted = len(without[agent].agents)
        forecasts.append(
            {
                "agent": agent,
                "sim": _rate_json(sim_outcomes[agent], config.confidence),
                "real": _rate_json(real_outcomes[agent], config.confidence),
                "forecast": predict(agent, count.sim_successes, count.sim_n, config.seed + i),
                "basis": f"mapping fitted on {fitted} {others}agent(s) with real trials",
            }
        )
    validation = leave_one_agent_out(
        list(counts.values()), confidence=config.confidence, seed=config.seed
    )
    curve = mapping_curve(
        mapping, np.linspace(0.01, 0.99, 50), confidence=config.confidence, seed=config.seed
    )
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "scene": campaign.meta["scene"],
        "sim": str(campaign.root),
        "trial_log": str(trials.path) if trials is not None else None,
        "agents": agents,
        "conditions": conditions,
        "forecast_conditions": pooled,
        "episodes": len(campaign.records),
        "real_trials": len(trials.trials) if trials is not None else 0,
        "confidence": config.confidence,
        "per_condition": per_condition,
        "agreement": {name: result.to_json() for name, result in agreement.items()},
        "mapping": mapping.summary(),
        "mapping_curve": {
            name: [round(float(v), 5) for v in values] for name, values in curve.items()
        },
        "forecasts": forecasts,
        "validation": validation.to_json(),
    }


def _figures(summary: dict[str, Any], campaign: Campaign, scene) -> dict[str, str]:
    """The report's figures as base64 PNGs (see eval.plots)."""
    curve = {name: np.array(values) for name, values in summary["mapping_curve"].items()}
    points = [
        {"agent": f["agent"], "sim": f["sim"], "real": f["real"]} for f in summary["forecasts"]
    ]
    trajectories: dict[str, list[dict]] = {}
    condition = summary["conditions"][0]
    for agent in summary["agents"]:
        episodes = [
            r for r in campaign.records if r["agent"] == agent and r["condition"] == condition
        ]
        trajectories[f"{agent} ({condition})"] = [
            {**campaign.trajectory(agent, condition, r["seed"]), "success": r["success"]}
            for r in episodes[:MAX_TRAJECTORIES_PER_AGENT]
        ]
    goals = np.array([[g.x, g.y] for g in scene.goals]) if scene.goals else None
    return {
        "scatter": plots.sim_vs_real_scatter(points, curve),
        "bars": plots.condition_bars(
            summary["per_condition"], summary["agents"], summary["conditions"]
        ),
        "forecast": plots.forecast_plot(summary["forecasts"]),
        "trajectories": plots.trajectories_on_map(scene.drivable, trajectories, goals),
    }


def _fidelity(
    scene, campaign: Campaign, config: ReportConfig
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Fidelity numbers for summary.json and image rows for the HTML (or the reason it is skipped).

    Two views of each held-out frame: the field alone, and the simulator's camera with the
    campaign's renderer (what the agents saw), the latter also feeding policy sensitivity.
    """
    if not config.fidelity:
        return {"skipped": "not requested (--no-fidelity)"}, []
    if scene.field_dir is None or scene.dataset_dir is None:
        return {
            "skipped": f"scene {scene.name!r} has no radiance field or no posed dataset of real frames"
        }, []
    from eval.fidelity import FidelityConfig, SimulatorView, measure_fidelity
    from scene_builder.datasets import load_dataset

    try:
        radiance_field = scene.load_field()
        dataset = load_dataset(scene.dataset_dir)
    except DriveEnvError as error:  # the rest of the report stands without this section
        return {"skipped": f"cannot load the field or the real frames: {error}"}, []
    field_presets = [p for p in scene.lighting if p in radiance_field.lighting_presets]
    field_presets = field_presets or list(radiance_field.lighting_presets)
    renderer = campaign.meta.get("renderer", "mesh")
    sim_name = f"simulator camera ({renderer})"
    fidelity_config = FidelityConfig(frames=config.fidelity_frames)
    results = {
        "field": measure_fidelity(radiance_field, dataset, field_presets, fidelity_config),
        sim_name: measure_fidelity(
            SimulatorView(scene, renderer),
            dataset,
            list(scene.lighting) if renderer == "mesh" else field_presets,
            fidelity_config,
        ),
    }
    first = results["field"]
    numbers: dict[str, Any] = {
        "frame_indices": [f.index for f in first.frames],
        "width": first.width,
        "height": first.height,
        "holdout_every": first.holdout_every,
        "views": {name: result.to_json() for name, result in results.items()},
    }
    numbers["policy_sensitivity"] = _sensitivities(results[sim_name], campaign)
    numbers["policy_sensitivity_measured"] = sum(
        "skipped" not in entry for entry in numbers["policy_sensitivity"].values()
    )
    rows = []
    for frame, sim_frame in zip(first.frames, results[sim_name].frames, strict=True):
        images = [(f"field: {p}", image) for p, image in frame.rendered.items()]
        images.append((f"{sim_name}: capture", sim_frame.rendered.get("capture")))
        rows.append(
            {
                "index": frame.index,
                "real": plots.image_to_base64(frame.real),
                "rendered": [
                    (label, plots.image_to_base64(image))
                    for label, image in images
                    if image is not None
                ],
            }
        )
    return numbers, rows


def _sensitivities(result, campaign: Campaign) -> dict[str, dict[str, Any]]:
    """Per agent: action change real vs rendered (capture preset) at the held-out poses."""
    from eval.fidelity import policy_sensitivity
    from eval.rollouts import AgentSpec, CampaignConfig, make_policy, make_sim_env

    if len(result.frames) < 2 or "capture" not in result.frames[0].rendered:
        return {}
    meta = campaign.meta
    specs = [AgentSpec(name, source) for name, source in meta["agents"].items()]
    config = CampaignConfig(
        Path(meta["scene"]["path"]), specs, renderer=meta.get("renderer", "mesh"), seeds=[0]
    )
    real = [frame.real for frame in result.frames]
    rendered = [frame.rendered["capture"] for frame in result.frames]
    sensitivities: dict[str, dict[str, Any]] = {}
    for spec in specs:
        try:
            obs = str(spec.run_info().get("obs", "state"))
        except CampaignError as error:
            sensitivities[spec.name] = {"skipped": str(error)}
            continue
        if "rgb" not in obs:
            sensitivities[spec.name] = {"skipped": f"observes {obs}: no camera image"}
            continue
        env = make_sim_env(config, spec, "capture")
        try:
            template, _ = env.reset(seed=0)
            policy = make_policy(spec, env, 0)
            size = template["rgb"].shape[0]
            sensitivities[spec.name] = policy_sensitivity(
                policy, template, real, rendered, image_size=size
            ).to_json()
        finally:
            env.close()
    return sensitivities


def write_report(config: ReportConfig) -> Path:
    """Check inputs, compute, draw and write REPORT_DIR/report.html and summary.json."""
    import jinja2

    from scene_builder.bundle import load_scene

    out = Path(config.out)
    if out.exists() and not config.overwrite:
        raise EvalError(f"{out}: already exists; pass --overwrite to replace it")
    campaign = load_campaign(config.sim)
    campaign.check_scene(config.scene)
    scene = load_scene(config.scene)
    trials = (
        load_trials(config.real, known_agents=campaign.finished_agents) if config.real else None
    )
    summary = build_summary(campaign, trials, config)
    summary["prediction_powered"] = prediction_powered(
        campaign, trials, summary["forecasts"], config.confidence
    )
    summary["fidelity"], fidelity_rows = _fidelity(scene, campaign, config)
    figures = _figures(summary, campaign, scene)

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["pct"] = _percent
    html = environment.get_template(TEMPLATE_NAME).render(
        s=summary,
        figures=figures,
        fidelity_rows=fidelity_rows,
        episode_columns=_episode_column_help(),
    )
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "report.html").write_text(html)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out / "report.html"


def _percent(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def _episode_column_help() -> dict[str, str]:
    return {
        "success": "reached the goal (goal task) or the end of the route (route task)",
        "collision": "touched an obstacle (PyBullet contact)",
        "off_road": "left the drivable area (e.g. drove off the table edge)",
        "route_completion": "at the episode's end, the fraction of the route reached (route task) or of the "
        "start-to-goal distance closed (goal task; success already counts within the goal radius)",
    }
