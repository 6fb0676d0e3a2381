"""Issue 16, driving half: lane keeping on a street scene from laterally offset spawns.

Rows: the privileged scripted expert (pure pursuit along the route, ``agents.experts``), the
random policy, and PPO trained on ``rgb+state`` (64x64 baked-texture camera at the capture's
height plus the state vector, whose route frame gives the offset from the route, the heading
error and the turn ahead; ``agents.train.train``, the code behind ``driveenv train``). Every row drives
the route task (``task="route"``) with ``spawn="random"``: a random section of the scene's
recorded route, the car spawned up to 1 m beside it and 15 degrees off its heading (the road
defaults of ``simulator.routes``). Printed as one markdown table: success over ``--episodes``
episodes with a 95% Wilson interval, collision and off-road rates, mean route completion, mean
and worst lateral deviation, training steps and CPU minutes; also written to the
``street_drive`` section of ``benchmarks/RESULTS.md``.

The scene: ``--scene`` (a street bundle such as ``assets/scenes/street``), else the synthetic
street of ``scene_builder.synthetic.make_synthetic_road`` built into ``--out``. Evaluation
episodes use seeds ``EVAL_SEED + k``, the same tasks for every row; rows are cached in
``--out/results.json`` and training resumes from ``--out/ROW``.

    .venv/bin/python benchmarks/street_drive.py --out runs/bench-street
    .venv/bin/python benchmarks/street_drive.py --scene assets/scenes/street --ppo-steps 50000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from batched_eval import (
    AgentPolicy,
    ExpertPolicy,
    RandomPolicy,
    run_seeded_episodes,
    success_summary,
)

EVAL_SEED = 900_000
EVAL_ENVS = 8
PPO_HYPERPARAMETERS = {
    "n_steps": 128,
    "batch_size": 256,
    "n_epochs": 4,
    "learning_rate": 1e-3,
    "policy_kwargs": {"net_arch": [64, 64], "share_features_extractor": False},
}
LANE_KEYS = ("collision", "off_road", "route_completion", "mean_lateral_deviation")


def env_config(scene: Path, obs: str, args):
    from simulator import EnvConfig

    return EnvConfig(
        scene=str(scene),
        obs=obs,
        renderer="baked" if "rgb" in obs else "none",
        task="route",
        spawn="random",
        max_episode_steps=args.max_episode_steps,
        seed=EVAL_SEED,
    )


def evaluate(make_policy, config, episodes: int) -> dict:
    """Success and lane metrics of ``make_policy(vec)`` over seeds ``EVAL_SEED + k``."""
    run = run_seeded_episodes(make_policy, config, episodes, EVAL_SEED, EVAL_ENVS)
    infos = [end.info for end in run.episodes]
    result = success_summary(run)
    result.update({key: float(np.mean([info[key] for info in infos])) for key in LANE_KEYS})
    result["max_lateral_deviation"] = float(np.max([i["max_lateral_deviation"] for i in infos]))
    return result


def run_ppo(scene: Path, args) -> dict:
    from agents import load_agent
    from agents.train import TrainConfig, train

    config = TrainConfig(
        algorithm="ppo",
        scene=str(scene),
        obs="rgb+state",
        renderer="baked",
        task="route",
        spawn="random",
        steps=args.ppo_steps,
        seed=args.seed,
        num_envs=8,
        max_episode_steps=args.max_episode_steps,
        checkpoint_every=max(1, args.ppo_steps // 3),
        eval_episodes=10,
        hyperparameters=dict(PPO_HYPERPARAMETERS),
    )
    run_dir = args.out / "ppo-rgb+state"
    fresh = not (run_dir / "run.json").is_file()
    cpu_start = time.process_time()
    run = train(config, run_dir, overwrite=False)
    cpu = time.process_time() - cpu_start if fresh else None
    agent = load_agent(run_dir)
    result = evaluate(
        lambda vec: AgentPolicy(agent), env_config(scene, "rgb+state", args), args.episodes
    )
    steps = int(agent.num_timesteps)
    return {
        **result,
        "agent": "ppo",
        "obs": "rgb+state (baked 64x64)",
        "steps": steps,
        "train_wall_s": run["wall_time_s"],
        "train_cpu_s": cpu,
    }


def run_baseline(name: str, scene: Path, args) -> dict:
    make_policy = (lambda vec: RandomPolicy(vec.num_envs)) if name == "random" else ExpertPolicy
    result = evaluate(make_policy, env_config(scene, "state", args), args.episodes)
    obs = "-" if name == "random" else "privileged"
    return {**result, "agent": name, "obs": obs, "steps": 0}


def table(results: dict, scene_name: str) -> str:
    lines = [
        f"Route task on `{scene_name}`, offset spawns (1 m, 15 degrees), random route sections.",
        "",
        "| row | obs | train steps | train CPU / wall | success | 95% interval | collision | off-road "
        "| completion | lateral dev. mean / worst |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for name, r in results.items():
        cpu = "-"
        if r.get("train_cpu_s"):
            cpu = f"{r['train_cpu_s'] / 60:.1f} / {r['train_wall_s'] / 60:.1f} min"
        lines.append(
            f"| {name} | {r['obs']} | {r['steps']} | {cpu} "
            f"| {r['success_rate']:.0%} of {r['episodes']} | {r['ci_low']:.0%}–{r['ci_high']:.0%} "
            f"| {r['collision']:.0%} | {r['off_road']:.0%} | {r['route_completion']:.0%} "
            f"| {r['mean_lateral_deviation']:.2f} / {r['max_lateral_deviation']:.2f} m |"
        )
    return "\n".join(lines)


def scene_for(args) -> Path:
    if args.scene is not None:
        return args.scene
    from scene_builder.synthetic import make_synthetic_road

    target = args.out / "synthetic-road"
    if not (target / "scene.json").is_file():
        make_synthetic_road(target, seed=0)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench-street"))
    parser.add_argument("--scene", type=Path, default=None)
    parser.add_argument("--only", nargs="*", help="rows to run (default all)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--ppo-steps", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--max-episode-steps", type=int, default=150)
    parser.add_argument("--table", action="store_true", help="only print the cached results")
    args = parser.parse_args()

    import torch

    from common.atomic import write_json_atomic
    from scene_builder.bundle import load_scene

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    scene = scene_for(args)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name in [] if args.table else args.only or ["expert", "random", "ppo-rgb+state"]:
        if name in results:
            continue
        if name == "ppo-rgb+state":
            result = run_ppo(scene, args)
        elif name in ("expert", "random"):
            result = run_baseline(name, scene, args)
        else:
            parser.error(f"unknown row {name!r}")
        result["load_1min"] = os.getloadavg()[0]
        results[name] = result
        write_json_atomic(results_path, results)
        print(f"{name}: {json.dumps(result)}", flush=True)
    from results import tee, write_section

    name = load_scene(scene, verify_hashes=False).name
    with tee() as printed:
        print(table(results, name))
        loads = ", ".join(f"{n} {r['load_1min']:.1f}" for n, r in results.items())
        print(f"\n1-minute load average at the end of each row: {loads} ({os.cpu_count()} cores)")
    # one section per scene: the synthetic street's, and each street bundle's
    write_section(
        "street_drive" if args.scene is None else f"street_drive {name}", printed.getvalue()
    )


if __name__ == "__main__":
    main()
