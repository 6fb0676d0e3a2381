"""Issue 6 on the shipped bird scene: an agent that reaches goals from 64x64 field-rendered images.

Trains the recipe below with ``agents.train.train`` (the code behind ``driveenv train``, 8
batched vector envs rendering the radiance field), then evaluates it, the random policy and the
privileged expert on the same seeded episodes with the field camera, and prints one markdown
table: agent, observation, renderer, training steps, training wall and CPU time, success over
``--episodes`` episodes with a 95% Wilson interval, load average.

The recipe (found on this scene; see the README section of issue 6): PPO on ``rgb+state``, the
goal task with random spawn/goal pairs on the drivable map (``spawn="random"``: at least a
quarter arena apart, the expert reaches nearly all of them) and 60-step episodes, short PPO rollouts
(128 steps x 8 envs) so that a small budget still gives many updates. ``rgb+state``: the goal
has to come from somewhere, and the state vector (``simulator.sensors.STATE_FIELDS``) is where
the goal is given; the image goes through ``agents.encoders.SmallCNN``. The ``blank-image`` row
evaluates the same trained agent with every camera image replaced by a constant grey one: the
drop from the trained row is what the agent takes from the images. The ``-baked`` row trains the
same recipe with the baked-texture camera (issue 17), and ``-baked-on-field`` evaluates that
agent with the field camera: the camera-to-camera transfer gap (a sim-to-sim check).

The table is also written to the ``bird_rgb`` section of ``benchmarks/RESULTS.md`` (with the
machine, the load and the command); the README quotes it.

Evaluation episodes use seeds ``EVAL_SEED + k`` (disjoint from training, seeds 0..7, and from
the periodic evaluations, 100,000+). Episode k is the same task for every row: an episode's
spawn, goal and lighting are drawn from its seed at reset, whatever the policy does. The
episodes run in a batched vector env (``simulator.make_vec``), each sub-environment reset with
the next episode's seed as it finishes, so the field renders 8 cameras per call.

Every row is cached in ``--out/results.json`` and training runs resume from ``--out/ROW``, so
the script can be stopped and run again. CPU time is this process's (all threads); it is only
known when the whole run trained in this process, and it estimates the wall time on an idle
machine better than the wall time on a shared one.

    .venv/bin/python benchmarks/bird_rgb.py --out runs/bench-bird-rgb
    .venv/bin/python benchmarks/bird_rgb.py --out runs/bench-bird-rgb --only random expert
    .venv/bin/python benchmarks/bird_rgb.py --out runs/bench-bird-rgb --table   # cached rows
    .venv/bin/python benchmarks/bird_rgb.py --out runs/bird-rgb-8k --steps 8192 --episodes 50 \
        --only ppo-rgb+state-baked ppo-rgb+state-baked-on-field         # a reduced budget
    .venv/bin/python benchmarks/bird_rgb.py --out runs/bird-rgb-baked --section bird_rgb_baked \
        --only ppo-rgb+state-baked ppo-rgb+state-baked-on-field         # the baked rows alone
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from batched_eval import (
    AgentPolicy,
    ExpertPolicy,
    RandomPolicy,
    run_seeded_episodes,
    success_summary,
)

REPO = Path(__file__).resolve().parents[1]
SCENE = REPO / "assets" / "scenes" / "bird"
EVAL_SEED = 700_000
EVAL_ENVS = 8


@dataclass(frozen=True)
class Recipe:
    """One trained row: what ``driveenv train`` gets."""

    algorithm: str
    obs: str
    steps: int
    hyperparameters: dict = field(default_factory=dict)
    num_envs: int = 8
    renderer: str = "field"  # the camera it trains and is evaluated with


PPO_RGB = {
    "n_steps": 128,
    "batch_size": 256,
    "n_epochs": 4,
    "learning_rate": 1e-3,
    # PPOAgent's default too, spelled out so that the recipe is complete on its own
    "policy_kwargs": {"net_arch": [64, 64], "share_features_extractor": False},
}
RECIPES: dict[str, Recipe] = {
    "ppo-rgb+state": Recipe("ppo", "rgb+state", 30_000, PPO_RGB),
    "ppo-rgb+state-baked": Recipe("ppo", "rgb+state", 30_000, PPO_RGB, renderer="baked"),
}
BLANK_ROWS = {"ppo-rgb+state-blank-image": "ppo-rgb+state"}
# The baked-camera agent evaluated with the field camera: the camera-to-camera transfer gap.
TRANSFER_ROWS = {"ppo-rgb+state-baked-on-field": ("ppo-rgb+state-baked", "field")}
BASELINES = ("random", "expert")


# ------------------------------------------------------------------ batched evaluation
def evaluate_batched(make_policy, env_config, episodes: int) -> dict:
    """Success of ``make_policy(vec)`` over episodes seeded ``EVAL_SEED + k``, k < ``episodes``."""
    run = run_seeded_episodes(make_policy, env_config, episodes, EVAL_SEED, EVAL_ENVS)
    return {
        **success_summary(run),
        "mean_return": float(np.mean([end.episode_return for end in run.episodes])),
        "eval_steps": run.steps,
        "eval_wall_s": run.wall_s,
    }


# ------------------------------------------------------------------ rows
def eval_config(obs: str, args, renderer: str = "field"):
    from simulator import EnvConfig

    return EnvConfig(
        scene=str(args.scene),
        obs=obs,
        renderer=renderer,
        spawn="random",
        max_episode_steps=args.max_episode_steps,
        seed=EVAL_SEED,
    )


def train_config(recipe: Recipe, args):
    from agents.train import TrainConfig

    return TrainConfig(
        algorithm=recipe.algorithm,
        scene=str(args.scene),
        obs=recipe.obs,
        steps=args.steps or recipe.steps,
        seed=args.seed,
        num_envs=recipe.num_envs,
        renderer=recipe.renderer,
        spawn="random",
        max_episode_steps=args.max_episode_steps,
        checkpoint_every=max(1, recipe.steps // 3),
        eval_episodes=10,
        hyperparameters=dict(recipe.hyperparameters),
    )


def run_trained(name: str, args) -> dict:
    from agents import load_agent
    from agents.train import train

    recipe = RECIPES[name]
    config = train_config(recipe, args)
    run_dir = args.out / name
    fresh = not (run_dir / "run.json").is_file()
    load_before = os.getloadavg()[1]
    cpu_start = time.process_time()
    run = train(config, run_dir, overwrite=False)
    cpu = time.process_time() - cpu_start if fresh else None
    load_after = os.getloadavg()[1]
    agent = load_agent(run_dir)
    result = evaluate_batched(
        lambda vec: AgentPolicy(agent),
        eval_config(recipe.obs, args, recipe.renderer),
        args.episodes,
    )
    return {
        **result,
        "agent": recipe.algorithm,
        "obs": recipe.obs,
        "renderer": recipe.renderer,
        "steps": int(agent.num_timesteps),  # PPO rounds chunks up to whole rollouts
        "train_wall_s": run["wall_time_s"],
        "train_cpu_s": cpu,
        # the load while training; unknown when the run had already trained (resumed)
        "train_load_5min": [load_before, load_after] if fresh else None,
        "periodic_evaluations": run["evaluations"],
        "encoder": _describe_encoder(agent),
    }


def run_blank(name: str, args) -> dict:
    from agents import load_agent

    source = BLANK_ROWS[name]
    recipe = RECIPES[source]
    agent = load_agent(args.out / source)
    result = evaluate_batched(
        lambda vec: AgentPolicy(agent, blank_images=True),
        eval_config(recipe.obs, args),
        args.episodes,
    )
    return {
        **result,
        "agent": f"{recipe.algorithm} of row {source}, camera replaced by grey",
        "obs": recipe.obs,
        "steps": int(agent.num_timesteps),
    }


def run_transfer(name: str, args) -> dict:
    from agents import load_agent

    source, renderer = TRANSFER_ROWS[name]
    recipe = RECIPES[source]
    agent = load_agent(args.out / source)
    result = evaluate_batched(
        lambda vec: AgentPolicy(agent), eval_config(recipe.obs, args, renderer), args.episodes
    )
    return {
        **result,
        "agent": f"{recipe.algorithm} of row {source} ({recipe.renderer} camera)",
        "obs": recipe.obs,
        "renderer": renderer,
        "steps": int(agent.num_timesteps),
    }


def run_baseline(name: str, args) -> dict:
    make_policy = (lambda vec: RandomPolicy(vec.num_envs)) if name == "random" else ExpertPolicy
    result = evaluate_batched(make_policy, eval_config("rgb", args), args.episodes)
    return {**result, "agent": name, "obs": "-" if name == "random" else "privileged", "steps": 0}


def _describe_encoder(agent) -> str:
    """Which observation keys reach the policy, and through what (proof the images are used)."""
    extractor = agent.policy.features_extractor
    cnn = getattr(extractor, "cnn", None)
    parameters = sum(p.numel() for p in cnn.parameters()) if cnn is not None else 0
    return (
        f"{type(extractor).__name__}: images {list(extractor.image_keys)} -> "
        f"{type(cnn).__name__ if cnn is not None else 'none'} ({parameters} parameters), "
        f"vectors {list(extractor.vector_keys)}"
    )


# ------------------------------------------------------------------ table
def table(results: dict) -> str:
    lines = [
        "| row | agent | obs | renderer | steps | train wall | train CPU | load (5 min) "
        "| success | 95% interval | mean return |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, r in results.items():
        wall = f"{r['train_wall_s'] / 60:.1f} min" if r.get("train_wall_s") else "-"
        cpu = f"{r['train_cpu_s'] / 60:.1f} min" if r.get("train_cpu_s") else "-"
        load = r.get("train_load_5min") or [r.get("load_5min", float("nan"))]
        load_text = "–".join(f"{value:.1f}" for value in load)
        lines.append(
            f"| {name} | {r['agent']} | {r['obs']} | {r.get('renderer', 'field')} 64x64 "
            f"| {r['steps']} | {wall} | {cpu} "
            f"| {load_text} | {r['success_rate']:.0%} of {r['episodes']} "
            f"| {r['ci_low']:.0%}–{r['ci_high']:.0%} | {r['mean_return']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench-bird-rgb"))
    parser.add_argument("--scene", type=Path, default=SCENE)
    parser.add_argument("--only", nargs="*", help="rows to run (default all)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--max-episode-steps", type=int, default=60)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="a reduced training budget for every trained row (its table goes to bird_rgb_reduced)",
    )
    parser.add_argument("--table", action="store_true", help="only print the cached results")
    parser.add_argument(
        "--section",
        default=None,
        help="the RESULTS.md section to write (default bird_rgb, or bird_rgb_reduced with --steps)",
    )
    args = parser.parse_args()

    import torch

    from common.atomic import write_json_atomic

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    rows = args.only or [*BASELINES, *RECIPES, *BLANK_ROWS, *TRANSFER_ROWS]
    if not args.table:
        for name in rows:
            if name in results:
                continue
            if name in RECIPES:
                result = run_trained(name, args)
            elif name in BLANK_ROWS:
                result = run_blank(name, args)
            elif name in TRANSFER_ROWS:
                result = run_transfer(name, args)
            elif name in BASELINES:
                result = run_baseline(name, args)
            else:
                parser.error(f"unknown row {name!r}")
            result["load_5min"] = os.getloadavg()[1]
            results = json.loads(results_path.read_text()) if results_path.is_file() else {}
            results[name] = result
            write_json_atomic(results_path, results)
            print(f"{name}: {json.dumps(result)}", flush=True)
    from results import tee, write_section

    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name, r in results.items():
        if r.get("encoder"):
            print(f"{name}: {r['encoder']}")
    with tee() as printed:
        print(table(results))
        print(
            "\nload: 5-minute load average at the start and end of training (trained rows) or at"
            " the end of the evaluation; train CPU '-': trained by an earlier process (resumed run)"
        )
    section = args.section or ("bird_rgb_reduced" if args.steps else "bird_rgb")
    write_section(section, printed.getvalue())


if __name__ == "__main__":
    main()
