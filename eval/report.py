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
from common.config_cli import option
from common.errors import DriveEnvError
from eval import metrics, plots
from eval.errors import CampaignError, EvalError
from eval.forecast import AgentCounts, fit_mapping, forecast, leave_one_agent_out, mapping_curve
from eval.real_logs import TrialLog, load_trials
from eval.report_energy import energy_maps
from eval.report_ppi import prediction_powered
from eval.report_team import team_maps, team_summary
from eval.report_transfer import camera_transfer
from eval.rollouts import Campaign, load_campaign

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "assets" / "report"
TEMPLATE_NAME = "report.html.j2"
MAX_TRAJECTORIES_PER_AGENT = 20


@dataclass
class ReportConfig:
    """Inputs and options of ``driveenv report`` (see ``eval.cli``)."""

    sim: str | Path = option(help="evaluation directory of 'driveenv evaluate'")
    scene: str | Path = option(help="the scene bundle the evaluation ran on")
    out: str | Path = option(help="report directory (report.html, summary.json)")
    real: str | Path | None = option(
        None, "real trial log (CSV); without it the report forecasts from the prior"
    )
    seed: int = option(0, "seed of the bootstrap and forecast draws")
    n_bootstrap: int = option(2000, "bootstrap resamples")
    confidence: float = option(0.95, "coverage of the reported intervals")
    fidelity: bool = option(True, "render held-out frames and score the cameras against them")
    fidelity_frames: int = option(4, "held-out frames rendered per preset")
    overwrite: bool = option(False, "replace an existing report")


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
        **_lane_keeping(campaign, agent, condition),
    }


def _lane_keeping(campaign: Campaign, agent: str, condition: str) -> dict[str, float]:
    """Route tasks: mean of the episodes' mean lateral deviation, and the largest one (metres)."""
    rows = [
        r
        for r in campaign.records
        if r["agent"] == agent and r["condition"] == condition and "max_lateral_deviation" in r
    ]
    if not rows:
        return {}
    return {
        "sim_mean_lateral_deviation": float(np.mean([r["mean_lateral_deviation"] for r in rows])),
        "sim_max_lateral_deviation": float(np.max([r["max_lateral_deviation"] for r in rows])),
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
    real: dict[tuple[str, str], list] = {}
    if trials is not None:
        check_conditions(campaign, trials)
        for t in trials.trials:
            real.setdefault((t.agent, t.condition), []).append(t)
    pooled = trials.conditions if trials is not None else campaign.conditions
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
    forecaster = _Forecaster(sim_outcomes, real_outcomes, config.confidence)
    curve = mapping_curve(
        forecaster.mapping,
        np.linspace(0.01, 0.99, 50),
        confidence=config.confidence,
        seed=config.seed,
    )
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "scene": campaign.meta["scene"],
        "sim": str(campaign.root),
        "trial_log": str(trials.path) if trials is not None else None,
        "agents": agents,
        "conditions": campaign.conditions,
        "forecast_conditions": pooled,
        "episodes": len(campaign.records),
        "real_trials": len(trials.trials) if trials is not None else 0,
        "confidence": config.confidence,
        "per_condition": _per_condition(campaign, agents, real, forecaster, config),
        "agreement": {name: result.to_json() for name, result in agreement.items()},
        "mapping": forecaster.mapping.summary(),
        "mapping_curve": {
            name: [round(float(v), 5) for v in values] for name, values in curve.items()
        },
        "forecasts": forecaster.pooled_rows(config.seed),
        "validation": leave_one_agent_out(
            list(forecaster.counts.values()), confidence=config.confidence, seed=config.seed
        ).to_json(),
    }


class _Forecaster:
    """Sim-to-real mappings: one on every agent with real trials, and per agent one fitted
    without it (leave-one-out), which is the one that forecasts that agent."""

    def __init__(self, sim: dict[str, np.ndarray], real: dict[str, np.ndarray], confidence):
        self.sim, self.real, self.confidence = sim, real, confidence
        self.counts = {
            a: AgentCounts(a, int(sim[a].sum()), sim[a].size, int(real[a].sum()), real[a].size)
            for a in sim
        }
        self.mapping = fit_mapping(list(self.counts.values()))
        self.without = {
            a: fit_mapping([c for c in self.counts.values() if c is not self.counts[a]])
            if c.has_real
            else self.mapping
            for a, c in self.counts.items()
        }

    def predict(self, agent: str, successes: int, n: int, seed: int) -> dict:
        target = AgentCounts(agent, successes, n)
        return forecast(
            self.without[agent], target, confidence=self.confidence, seed=seed
        ).to_json()

    def pooled_rows(self, seed: int) -> list[dict[str, Any]]:
        """One forecast per agent from its sim outcomes pooled over the forecast conditions."""
        rows = []
        for i, (agent, count) in enumerate(self.counts.items()):
            if not count.sim_n:  # a resumed campaign without episodes under the log's conditions
                continue
            others = "other " if count.has_real else ""
            fitted = len(self.without[agent].agents)
            rows.append(
                {
                    "agent": agent,
                    "sim": _rate_json(self.sim[agent], self.confidence),
                    "real": _rate_json(self.real[agent], self.confidence),
                    "forecast": self.predict(agent, count.sim_successes, count.sim_n, seed + i),
                    "basis": f"mapping fitted on {fitted} {others}agent(s) with real trials",
                }
            )
        return rows


def _per_condition(
    campaign: Campaign, agents: list[str], real: dict, forecaster: _Forecaster, config
) -> list[dict[str, Any]]:
    """A row per agent and simulated condition: sim and real rates and the agent's forecast."""
    rows: list[dict[str, Any]] = []
    for agent in agents:
        for condition in campaign.conditions:
            sim = campaign.outcomes(agent, condition)
            if sim.size:
                row = _condition_row(
                    campaign, agent, condition, real.get((agent, condition), []), config.confidence
                )
                row["forecast"] = forecaster.predict(
                    agent, int(sim.sum()), sim.size, config.seed + len(rows)
                )
                rows.append(row)
    return rows


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
    from eval.fidelity import FidelityConfig, SimulatorView, held_out_rule, measure_fidelity
    from scene_builder.datasets import load_dataset

    try:
        radiance_field = scene.load_field()
        dataset = load_dataset(scene.dataset_dir)
        holdout_every = held_out_rule(radiance_field)  # score only frames it never trained on
    except DriveEnvError as error:  # the rest of the report stands without this section
        return {"skipped": f"cannot load the field or the real frames: {error}"}, []
    presets = list(scene.lighting)  # a preset without a code: scene_builder.lighting's rule
    renderer = campaign.meta.get("renderer", "mesh")
    sim_name = f"simulator camera ({renderer})"
    fidelity_config = FidelityConfig(config.fidelity_frames, holdout_every=holdout_every)
    results = {
        "field": measure_fidelity(radiance_field, dataset, presets, fidelity_config),
        sim_name: measure_fidelity(
            SimulatorView(scene, renderer), dataset, presets, fidelity_config
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
    numbers["policy_sensitivity"] = _sensitivities(results[sim_name], campaign, scene)
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


def _sensitivities(result, campaign: Campaign, scene) -> dict[str, dict[str, Any]]:
    """Per agent: action change real vs rendered (capture preset) at the held-out poses."""
    from eval.fidelity import policy_sensitivity
    from eval.rollouts import AgentSpec, CampaignConfig, make_policy, make_sim_env

    if len(result.frames) < 2 or "capture" not in result.frames[0].rendered:
        return {}
    meta = campaign.meta
    specs = [AgentSpec(name, source) for name, source in meta["agents"].items()]
    config = CampaignConfig(scene.root, specs, renderer=meta.get("renderer", "mesh"), seeds=[0])
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
        env = make_sim_env(config, spec, "capture", scene)
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
    """Check inputs, compute, draw and write REPORT_DIR/report.html and summary.json.

    ``config.scene`` is a bundle directory or an already loaded ``SceneBundle``; either way it is
    read at most once, and it (not the path recorded in campaign.json) is what the report uses.
    """
    import jinja2

    from scene_builder.bundle import as_scene

    out = Path(config.out)
    if out.exists() and not config.overwrite:
        raise EvalError(f"{out}: already exists; pass --overwrite to replace it")
    campaign = load_campaign(config.sim)
    scene = as_scene(config.scene)
    campaign.check_scene(scene)
    trials = (
        load_trials(config.real, known_agents=campaign.finished_agents) if config.real else None
    )
    summary = build_summary(campaign, trials, config)
    summary["prediction_powered"] = prediction_powered(
        campaign, trials, summary["forecasts"], config.confidence
    )
    summary["camera_transfer"] = camera_transfer(campaign, config.confidence)
    summary["fidelity"], fidelity_rows = _fidelity(scene, campaign, config)
    figures = _figures(summary, campaign, scene)
    energy = energy_maps(campaign, scene)
    summary["energy_maps"] = [{k: v for k, v in m.items() if k != "png"} for m in energy]
    summary["teams"] = team_summary(campaign, config.confidence)
    maps = team_maps(campaign, scene, summary["teams"])

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
        energy_maps=energy,
        teams=summary["teams"],
        team_maps=maps,
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
        "mean_lateral_deviation": "route task: the vehicle's mean distance to the route over the "
        "episode's steps, metres (lane keeping); max_lateral_deviation: the largest",
    }
