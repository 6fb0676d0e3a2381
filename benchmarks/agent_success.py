"""Agents benchmark: success rates on the synthetic goal task and MEow vs SAC on Pendulum-v1.

(Not ``benchmarks/agents.py``: run as a script, a file of that name would be imported in place of
the ``agents`` package, since Python puts the script's folder first on ``sys.path``.)

Prints one markdown table: algorithm, observation, training steps, training wall time, training
CPU time and steps per CPU second (training is single-threaded, so its CPU time is about its
wall time on an idle core: the estimate to use when the machine was shared), the 5-minute load
average when the row finished, success rate over ``--episodes`` evaluation episodes with a 95%
Wilson interval (Pendulum rows: mean return over 10 episodes per seed, mean ± std over seeds).

Each row is trained with ``agents.train.train`` (the code behind ``driveenv train``) into
``--out/ROW`` and its result cached in ``--out/results.json``, so the benchmark resumes where it
stopped and rows can be run separately (``--only ppo sac``) on a loaded machine. Evaluation
episodes use seeds disjoint from training and from the periodic evaluations.

    .venv/bin/python benchmarks/agent_success.py --out runs/bench-agents
    .venv/bin/python benchmarks/agent_success.py --out runs/bench-agents --only meow pendulum-meow
    .venv/bin/python benchmarks/agent_success.py --out runs/bench-agents --table   # print cached rows
    .venv/bin/python benchmarks/agent_success.py --only bc-1 tdil-1 --seeds 0 1 2 3

With ``--seeds``, each one-demonstration row (``ONE_DEMO_ROWS``) is trained once per seed (rows
``NAME@sS``) and a pooled row sums their evaluation episodes: one seed's 100 episodes do not tell
two imitation learners apart when their seeds differ by as much as their means.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

EVAL_SEED = 500_000

# name -> (algorithm, steps, extra TrainConfig fields)
ROWS: dict[str, tuple[str, int, dict]] = {
    "ppo": ("ppo", 75_000, {"num_envs": 8}),
    "sac": ("sac", 30_000, {}),
    "meow": ("meow", 30_000, {}),
    "bc-20": ("bc", 3_000, {"demo_count": 20}),
    "bc-1": ("bc", 3_000, {"demo_count": 1}),
    "bc-1-mirror": ("bc", 3_000, {"demo_count": 2}),
    "tdil-1": ("tdil", 6_000, {}),
}
# Rows that learn from the one demonstration of bc-1 and tdil-1 together with its mirror image
# (agents.tdil.mirror_trajectory): BC given the same augmentation as TDIL, for a fair comparison.
MIRRORED_DEMO_ROWS = ("bc-1-mirror",)
ONE_DEMO_ROWS = ("bc-1", "bc-1-mirror", "tdil-1")  # rows that --seeds repeats
PENDULUM_ROWS = {"pendulum-meow": "meow", "pendulum-sac": "sac"}


def evaluate(make_policy, env_config, episodes: int) -> dict:
    """Success of ``make_policy(env)`` over ``episodes`` evaluation episodes, with its interval."""
    from agents.train import evaluate_success
    from eval.metrics import wilson_interval
    from simulator import make_env

    env = make_env(env_config)
    try:
        result = evaluate_success(make_policy(env), env, episodes, seed=EVAL_SEED)
    finally:
        env.close()
    successes = round(result["success_rate"] * episodes)
    low, high = wilson_interval(successes, episodes)
    return {**result, "episodes": episodes, "ci_low": low, "ci_high": high}


class RandomPolicy:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def predict(self, obs, deterministic=True):
        return self.rng.uniform(-1, 1, 2).astype(np.float32), None


def run_row(name: str, args, scene: Path, demos: Path, seed: int, out: Path) -> dict:
    from agents import load_agent
    from agents.experts import make_expert
    from agents.train import TrainConfig, train
    from simulator import EnvConfig

    env_fields = dict(
        scene=str(scene), obs=args.obs, spawn="random", max_episode_steps=args.max_episode_steps
    )
    eval_config = EnvConfig(**env_fields, seed=EVAL_SEED)
    if name == "expert":
        result = evaluate(make_expert, eval_config, args.episodes)
        return {**result, "algorithm": "expert", "steps": 0, "wall_time_s": 0.0}
    if name == "random":
        result = evaluate(lambda env: RandomPolicy(0), eval_config, args.episodes)
        return {**result, "algorithm": "random", "steps": 0, "wall_time_s": 0.0}
    algorithm, steps, extra = ROWS[name]
    config = TrainConfig(
        algorithm=algorithm,
        scene=str(scene),
        obs=args.obs,
        steps=int(steps * args.steps_scale),
        seed=seed,
        max_episode_steps=args.max_episode_steps,
        checkpoint_every=max(1, int(steps * args.steps_scale) // 5),
        eval_episodes=10,
        demos=str(_mirrored_demo(demos) if name in MIRRORED_DEMO_ROWS else demos)
        if algorithm in ("bc", "tdil")
        else None,
        **extra,
    )
    fresh = not (out / "run.json").is_file()
    start, cpu_start = time.perf_counter(), time.process_time()
    run = train(config, out, overwrite=False)
    wall = run.get("wall_time_s", time.perf_counter() - start)
    # CPU time of this single-threaded process ~ its wall time on an idle core; only known
    # when the whole run trained in this process (not resumed)
    cpu = time.process_time() - cpu_start if fresh else None
    result = evaluate(lambda env: load_agent(out), eval_config, args.episodes)
    return {
        **result,
        "algorithm": algorithm,
        "seed": seed,
        "steps": config.steps,
        "wall_time_s": wall,
        "cpu_time_s": cpu,
        "load_average_5min": os.getloadavg()[1],
    }


def run_pendulum(name: str, args) -> dict:
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy

    from agents import algorithm_class

    algorithm = PENDULUM_ROWS[name]
    returns, walls = [], []
    for seed in range(args.pendulum_seeds):
        env = gym.make("Pendulum-v1")
        # the paper's setting: alpha fixed (MEow at 0.2: Pendulum's rewards are ~100x the goal
        # task's, for which MEowAgent defaults to 0.05); short warm-up for a 20k-step budget
        overrides = {"learning_starts": 1000, **({"ent_coef": 0.2} if algorithm == "meow" else {})}
        model = algorithm_class(algorithm).create(env, seed=seed, **overrides)
        start = time.perf_counter()
        model.learn(args.pendulum_steps)
        walls.append(time.perf_counter() - start)
        mean, _ = evaluate_policy(
            model, gym.make("Pendulum-v1"), n_eval_episodes=10, deterministic=True
        )
        returns.append(float(mean))
    return {
        "algorithm": algorithm,
        "steps": args.pendulum_steps,
        "wall_time_s": float(np.mean(walls)),
        "mean_return": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "returns": returns,
    }


def table(results: dict) -> str:
    """Markdown table; CPU time and steps/s (per CPU second) estimate an idle machine."""
    lines = [
        "| row | algorithm | obs | steps | train wall time | train CPU time | steps/s (CPU) "
        "| load (5 min) | result | 95% interval |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in results.items():
        wall = f"{r['wall_time_s'] / 60:.1f} min" if r["wall_time_s"] else "-"
        cpu = r.get("cpu_time_s")
        cpu_text = f"{cpu / 60:.1f} min" if cpu else "-"
        rate = f"{r['steps'] / cpu:.0f}" if cpu and r["steps"] else "-"
        load = f"{r['load_average_5min']:.1f}" if "load_average_5min" in r else "-"
        timing = f"{wall} | {cpu_text} | {rate} | {load}"
        if name.startswith("pendulum"):
            result = (
                f"return {r['mean_return']:.0f} ± {r['return_std']:.0f} ({len(r['returns'])} seeds)"
            )
            lines.append(
                f"| {name} | {r['algorithm']} | Pendulum-v1 | {r['steps']} | {timing} | {result} | - |"
            )
        else:
            lines.append(
                f"| {name} | {r['algorithm']} | {r.get('obs', '')} | {r['steps']} | {timing} | "
                f"success {r['success_rate']:.0%} of {r['episodes']} | "
                f"{r['ci_low']:.0%}–{r['ci_high']:.0%} |"
            )
    lines.extend(_pooled_rows(results))
    return "\n".join(lines)


def _pooled_rows(results: dict) -> list[str]:
    """One line per row run with several seeds (``NAME@sS``): every seed's episodes together."""
    from eval.metrics import wilson_interval

    by_row: dict[str, list[dict]] = {}
    for key, r in results.items():
        if "@s" in key:
            by_row.setdefault(key.split("@s")[0], []).append(r)
    lines = []
    for name, runs in by_row.items():
        if len(runs) < 2:
            continue
        successes = sum(round(r["success_rate"] * r["episodes"]) for r in runs)
        episodes = sum(r["episodes"] for r in runs)
        low, high = wilson_interval(successes, episodes)
        seeds = ", ".join(f"{r['success_rate']:.0%}" for r in sorted(runs, key=lambda r: r["seed"]))
        lines.append(
            f"| {name} ({len(runs)} seeds) | {runs[0]['algorithm']} | {runs[0].get('obs', '')} "
            f"| {runs[0]['steps']} | - | - | - | - | success {successes / episodes:.0%} of "
            f"{episodes} (seeds: {seeds}) | {low:.0%}–{high:.0%} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench-agents"))
    parser.add_argument(
        "--scene", type=Path, help="scene bundle (default: a synthetic one in --out)"
    )
    parser.add_argument("--obs", default="state+scan", help="sensors of the synthetic-scene rows")
    parser.add_argument(
        "--only",
        nargs="*",
        help="rows to run (default all): " + ", ".join(["expert", "random", *ROWS, *PENDULUM_ROWS]),
    )
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="*",
        help="train each of " + ", ".join(ONE_DEMO_ROWS) + " once per seed and pool them",
    )
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every step budget")
    parser.add_argument("--max-episode-steps", type=int, default=200)
    parser.add_argument("--pendulum-steps", type=int, default=20_000)
    parser.add_argument("--pendulum-seeds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (small nets gain nothing from more)"
    )
    parser.add_argument("--table", action="store_true", help="only print the cached results")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    rows = args.only or ["expert", "random", *ROWS, *PENDULUM_ROWS]
    if not args.table:
        scene = args.scene or _synthetic_scene(args.out)
        demos = _demos(args, scene)
        for name, seed in _runs(rows, args):
            key = f"{name}@s{seed}" if args.seeds and name in ONE_DEMO_ROWS else name
            if key in results:
                continue
            start = time.perf_counter()
            result = (
                run_pendulum(name, args)
                if name.startswith("pendulum")
                else run_row(name, args, scene, demos, seed, args.out / key)
            )
            result["obs"] = "" if name.startswith("pendulum") else args.obs
            result["total_time_s"] = time.perf_counter() - start
            results = json.loads(results_path.read_text()) if results_path.is_file() else {}
            results[key] = result
            from common.atomic import write_json_atomic

            write_json_atomic(results_path, results)
            print(f"{name}: {json.dumps(result)}", flush=True)
    from results import tee, write_section

    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tee() as printed:
        print(table(results))
    write_section("agent_success", printed.getvalue())


def _runs(rows: list[str], args) -> list[tuple[str, int]]:
    """(row, training seed) pairs: the one-demonstration rows once per ``--seeds`` entry."""
    return [
        (name, seed)
        for name in rows
        for seed in (args.seeds if args.seeds and name in ONE_DEMO_ROWS else [args.seed])
    ]


def _synthetic_scene(out: Path) -> Path:
    from scene_builder.synthetic import make_synthetic_scene

    path = out / "synthetic-scene"
    if not (path / "scene.json").is_file():
        make_synthetic_scene(path, seed=0)
    return path


def _demos(args, scene: Path) -> Path:
    """20 expert demonstrations with every sensor of --obs (recorded once)."""
    from agents.demos import record_episode, save_demos
    from agents.experts import make_expert
    from simulator import EnvConfig, make_env

    path = args.out / f"demos-{args.obs.replace('+', '-')}.npz"
    if not path.is_file():
        config = EnvConfig(
            scene=str(scene),
            obs=args.obs,
            spawn="random",
            max_episode_steps=args.max_episode_steps,
            seed=1,
        )
        env = make_env(config)
        expert = make_expert(env)
        save_demos(
            path,
            [record_episode(env, expert, seed=1000 + i) for i in range(20)],
            {"env_config": config.to_dict()},
        )
        env.close()
    return path


def _mirrored_demo(demos: Path) -> Path:
    """A file with the first successful demonstration of ``demos`` (the one bc-1 and tdil-1
    learn from) and its mirror image, in that order (written once)."""
    from agents.demos import load_demos_with_metadata, save_demos
    from agents.tdil import mirror_trajectory

    path = demos.with_name(f"{demos.stem}-first-mirrored.npz")
    if not path.is_file():
        trajectories, metadata = load_demos_with_metadata(demos)
        first = next(t for t in trajectories if t.success)
        vehicle = metadata.get("env_config", {}).get("vehicle", "car")
        save_demos(path, [first, mirror_trajectory(first, vehicle)], metadata)
    return path


if __name__ == "__main__":
    main()
