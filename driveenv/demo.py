"""``driveenv demo``: the whole job, end to end, on the shipped bird scene.

1. load the scene bundle, print its summary and write its preview;
2. train four agents briefly: SAC on state and range scan, PPO on 64x64 field-rendered images
   (plus the state: the goal) with batched envs, and a diffusion policy and behaviour cloning from
   expert demonstrations;
3. evaluate them (and the privileged expert) under two lighting presets on the same seeded
   episodes, once with the radiance-field camera and once with the baked-mesh camera;
4. pair the field campaign with the shipped example trial log and write the HTML report;
5. print where the report is and the headline numbers.

On a road scene (``--scene assets/scenes/street``: ``extras["scene_kind"] == "road"``) every
agent trains and is evaluated on the route task (lane keeping from offset spawns) instead of goals,
and a scene without a radiance field is evaluated with the mesh camera only.

Every stage is the library call behind the matching CLI command, and every stage resumes: a
second ``driveenv demo`` with the same options reuses the finished runs and episodes. The
budgets below keep the full demo and ``--quick`` within the times the README gives; the quick
agents are barely trained and the report says what they rest on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eval.errors import EvalError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_SCENE = ASSETS / "scenes" / "bird"
EXAMPLE_TRIALS = ASSETS / "examples" / "real_trials_example.csv"
ROAD_EPISODE_STEPS = 150  # at least, on a road scene


@dataclass(frozen=True)
class DemoPlan:
    """How much of each stage to run."""

    sac_steps: int
    ppo_steps: int
    ppo_envs: int
    demo_episodes: int
    imitation_steps: int
    eval_episodes: int
    conditions: tuple[str, ...] = ("capture", "dim")
    max_episode_steps: int = 150


QUICK = DemoPlan(
    sac_steps=600,
    ppo_steps=256,
    ppo_envs=4,
    demo_episodes=4,
    imitation_steps=300,
    eval_episodes=3,
    max_episode_steps=60,
)
FULL = DemoPlan(
    sac_steps=15_000,
    ppo_steps=8_192,
    ppo_envs=8,
    demo_episodes=30,
    imitation_steps=4_000,
    eval_episodes=20,
)


class _Stages:
    """Prints each numbered stage and, when the next one starts, how long the last one took."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.seconds: dict[int, float] = {}

    def start(self, number: int, text: str) -> None:
        self.finish()
        self.number, self.started = number, time.perf_counter()
        print(f"\n[{number}/5] {text}", flush=True)

    def finish(self) -> None:
        if self.started is not None:
            self.seconds[self.number] = time.perf_counter() - self.started
            print(f"  ({self.seconds[self.number]:.0f} s)", flush=True)
            self.started = None


def _task(scene) -> str:
    """The demo's task: the route along a road scene's recorded route, goals on a table top."""
    from simulator.vehicles import is_road_scene

    return "route" if is_road_scene(scene.extras) else "goal"


def _renderers(scene) -> tuple[str, ...]:
    """The cameras to evaluate with: the radiance field (when the scene has one) and the mesh."""
    return ("field", "mesh") if scene.field_dir is not None else ("mesh",)


def _record_demos(scene, plan: DemoPlan, target: Path, seed: int) -> Path:
    """Expert demonstrations on state observations (the imitation agents' training data)."""
    from agents.demos import record_demos, save_demos
    from agents.experts import make_expert
    from simulator import EnvConfig, make_env

    if target.is_file():
        return target
    config = EnvConfig(
        scene=scene.root,
        obs="state",
        renderer="none",
        task=_task(scene),
        spawn="random",
        max_episode_steps=plan.max_episode_steps,
        seed=seed,
    )
    env = make_env(config, scene=scene)
    try:
        episodes = record_demos(env, make_expert(env), plan.demo_episodes, seed)
    finally:
        env.close()
    save_demos(target, episodes, {"recorder": "agents.experts", "env_config": config.to_dict()})
    rate = sum(e.success for e in episodes) / len(episodes)
    print(f"  {len(episodes)} expert demonstrations, expert success {rate:.0%}")
    return target


def _train_agents(path: Path, scene, plan: DemoPlan, out: Path, seed: int) -> list[Path]:
    """Train the demo's agents on ``scene`` (loaded from ``path``, which run.json records)."""
    from agents.train import TrainConfig, train
    from common.progress import progress_bar

    demos = _record_demos(scene, plan, out / "demos.npz", seed)
    common = dict(
        scene=str(path),
        task=_task(scene),
        seed=seed,
        max_episode_steps=plan.max_episode_steps,
        eval_episodes=plan.eval_episodes,
    )
    configs = {
        "sac": TrainConfig(
            algorithm="sac",
            obs="state+scan",  # the state vector alone does not show the bird
            steps=plan.sac_steps,
            checkpoint_every=plan.sac_steps,
            **common,
        ),
        "ppo": TrainConfig(
            algorithm="ppo",
            obs="rgb+state",  # images, and the goal (which no image shows) from the state
            renderer=_renderers(scene)[0],
            num_envs=plan.ppo_envs,
            steps=plan.ppo_steps,
            checkpoint_every=plan.ppo_steps,
            # benchmarks/bird_rgb.py's recipe (its results: benchmarks/RESULTS.md)
            hyperparameters={
                "n_steps": min(128, max(8, plan.ppo_steps // plan.ppo_envs)),
                "batch_size": 256,
                "n_epochs": 4,
                "learning_rate": 1e-3,
            },
            **common,
        ),
        "diffusion": TrainConfig(
            algorithm="diffusion",
            obs="state",
            steps=plan.imitation_steps,
            checkpoint_every=plan.imitation_steps,
            demos=str(demos),
            **common,
        ),
        "bc": TrainConfig(
            algorithm="bc",
            obs="state",
            steps=plan.imitation_steps,
            checkpoint_every=plan.imitation_steps,
            demos=str(demos),
            **common,
        ),
    }
    runs = []
    for name, config in configs.items():
        run_dir = out / "runs" / name
        started = time.perf_counter()
        with progress_bar() as progress:
            run = train(config, run_dir, progress=progress, scene=scene)
        last = run["evaluations"][-1] if run.get("evaluations") else None
        rate = f"success {last['success_rate']:.0%} in training eval" if last else "trained"
        print(f"  {name:<10} {config.obs:<6} {rate} ({time.perf_counter() - started:.0f} s)")
        runs.append(run_dir)
    return runs


def _evaluate(scene, runs: list[Path], plan: DemoPlan, out: Path, seed: int) -> dict:
    from eval.rollouts import CampaignConfig, agent_specs, run_campaign

    campaigns = {}
    for renderer in _renderers(scene):
        config = CampaignConfig(
            scene=scene.root,
            agents=agent_specs([str(r) for r in runs] + ["expert"]),
            conditions=list(plan.conditions),
            seeds=list(range(seed, seed + plan.eval_episodes)),
            renderer=renderer,
            max_episode_steps=plan.max_episode_steps,
            workers=1,
            task=_task(scene),
        )
        campaigns[renderer] = run_campaign(config, out / f"eval-{renderer}", scene=scene)
    return campaigns


def _success_table(campaigns: dict) -> list[dict[str, Any]]:
    rows = []
    first = next(iter(campaigns.values()))
    for agent in first.agents:
        row: dict[str, Any] = {"agent": agent}
        for renderer, campaign in campaigns.items():
            outcomes = campaign.outcomes(agent)
            row[f"sim_{renderer}"] = float(outcomes.mean()) if outcomes.size else None
        rows.append(row)
    return rows


def run_demo(
    out: str | Path = "runs/demo",
    quick: bool = False,
    scene: str | Path = DEFAULT_SCENE,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the demo into ``out``; returns the headline numbers (also in ``out/headline.json``)."""
    from common.atomic import write_json_atomic
    from eval.report import ReportConfig, write_report
    from scene_builder.bundle import load_scene
    from scene_builder.preview import scene_summary, write_preview

    plan = QUICK if quick else FULL
    out = Path(out)
    scene = Path(scene)
    if not (scene / "scene.json").is_file():
        raise EvalError(f"{scene}: no scene bundle here (the demo needs assets/scenes/bird)")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stages = _Stages()

    stages.start(1, f"scene {scene}")
    bundle = load_scene(scene)
    if _task(bundle) == "route":  # a 40 m route section takes a car about 7 s, 70 steps
        plan = replace(plan, max_episode_steps=max(plan.max_episode_steps, ROAD_EPISODE_STEPS))
    print(scene_summary(bundle))
    preview = write_preview(bundle, out / "scene_preview.png", image_size=96 if quick else 160)
    print(f"  preview: {preview}")

    stages.start(
        2,
        f"training agents on the {_task(bundle)} task (SAC on state+scan, PPO on"
        f" {_renderers(bundle)[0]} images + state, diffusion policy and BC from demos)",
    )
    runs = _train_agents(scene, bundle, plan, out, seed)

    stages.start(
        3,
        f"evaluating ({_task(bundle)} task) under {', '.join(plan.conditions)} with the"
        f" {' and '.join(_renderers(bundle))} camera(s)",
    )
    campaigns = _evaluate(bundle, runs, plan, out, seed)

    stages.start(
        4, "report against the example trial log (an example of the format, not measurements)"
    )
    report = write_report(
        ReportConfig(
            sim=out / f"eval-{_renderers(bundle)[0]}",
            real=EXAMPLE_TRIALS,
            scene=bundle,
            out=out / "report",
            n_bootstrap=300 if quick else 2000,
            fidelity_frames=2 if quick else 4,
            overwrite=True,
        )
    )
    summary = json.loads((report.parent / "summary.json").read_text())

    stages.start(5, "headline")
    stages.finish()
    headline = {
        "report": str(report),
        "stage_seconds": {str(k): round(v, 1) for k, v in stages.seconds.items()},
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "episodes_per_condition": plan.eval_episodes,
        "agents": _success_table(campaigns),
        "forecast": summary.get("headline", summary.get("forecast")),
    }
    write_json_atomic(out / "headline.json", headline)
    renderers = list(campaigns)
    print(f"{'agent':<12}" + "".join(f"{f'sim ({r})':>12}" for r in renderers))
    for row in headline["agents"]:
        cells = [row.get(f"sim_{r}") for r in renderers]
        text = "".join(f"{'-' if v is None else f'{v:.0%}':>12}" for v in cells)
        print(f"{row['agent']:<12}{text}")
    print(f"\nreport: {report}  ({headline['minutes']} min)")
    return headline
