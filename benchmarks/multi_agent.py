"""Multi-agent benchmark: team success of IQL, VDN, QMIX, DDN and DMIX, robots on the bird arena.

Rows: every learner with 2 and 3 robots (diffdrive robots, ``state+scan`` observations, the
crossing tasks of ``simulator.multi_tasks``, goals one vehicle length wide by default), each trained with ``agents.marl.train.train_marl``
(the code behind ``driveenv train dmix --agents N``) once per seed into ``--out/ROW@sS``. A row
reports the team success rate (every robot arrived) as the mean over seeds with its 95%
Student-t interval across seeds, the per-seed rates, the rate of episodes in which two robots
touched, and the CPU minutes of one seed's training and evaluation (process time: on a shared
machine this is the figure that does not depend on the load). Evaluation episodes use an
environment seeded apart from training's and from the periodic evaluations.

``--mpe`` adds MPE ``simple_spread`` (3 agents, 25 steps, the ``mpe2`` package) with the same
learners: mean team return (the sum of the agents' rewards) over the evaluation episodes, with
a uniformly random team as the reference row.

``--matrix`` adds DFAC's two-step matrix game (``agents.marl.matrix_game``): for each learner,
the branch its greedy team takes and the error of its Z_tot(s1) against the closed-form
quantiles of that policy's return at tau = 0.1, 0.25, 0.5, 0.75, 0.9.

Results are cached in ``--out/results.json``, so the benchmark resumes where it stopped.

    .venv/bin/python benchmarks/multi_agent.py --out runs/bench-marl
    .venv/bin/python benchmarks/multi_agent.py --out runs/bench-marl --robots 2 --steps 6000 --mpe
    .venv/bin/python benchmarks/multi_agent.py --out runs/bench-marl --table   # print cached rows
    .venv/bin/python benchmarks/multi_agent.py --out runs/bench-marl --table --write  # and write them
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ALGORITHMS = ("iql", "vdn", "qmix", "ddn", "dmix")
BIRD = Path(__file__).resolve().parents[1] / "assets" / "scenes" / "bird"
EVAL_SEED = 700_000
MPE_STEPS = 25
BENCH_HP = {  # fewer, smaller updates and fewer quantile levels (DDN, DMIX): CPU budget
    "batch_size": 16,
    "train_every": 8,
    "quantiles": 4,
    "mean_quantiles": 4,
    "n_step": 5,  # the learners' default, written out so the table states it
}


def t_interval(values: list[float]) -> tuple[float, float]:
    """The 95% Student-t interval of the mean of ``values``, clipped to [0, 1]."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return max(0.0, values.mean() - half), min(1.0, values.mean() + half)


def train_config(algorithm: str, robots: int, seed: int, args):
    from agents.train import TrainConfig

    return TrainConfig(
        algorithm=algorithm,
        scene=str(BIRD),
        obs="state+scan",
        vehicle="diffdrive",
        steps=args.steps,
        seed=seed,
        max_episode_steps=args.max_episode_steps,
        checkpoint_every=args.steps,
        eval_episodes=10,
        hyperparameters={"epsilon_steps": args.steps // 2, **BENCH_HP, **json.loads(args.hp)},
        env_options={"agents": robots, "goal_radius": args.goal_radius},
    )


def bird_run(algorithm: str, robots: int, seed: int, args) -> dict:
    """Train one seed on the bird arena and evaluate it; CPU minutes of both."""
    from agents import load_agent
    from agents.marl.evaluate import evaluate_team
    from agents.marl.train import train_marl
    from simulator import make_multi

    config = train_config(algorithm, robots, seed, args)
    start, wall = time.process_time(), time.perf_counter()
    run_dir = Path(args.out) / f"{algorithm}-{robots}@s{seed}"
    train_marl(config, run_dir, overwrite=True)
    env = make_multi(config.env_config(seed=seed + 20_000))
    try:
        agent = load_agent(run_dir)
        result = evaluate_team(agent, env, args.episodes, seed=EVAL_SEED)
    finally:
        env.close()
    result["cpu_minutes"] = (time.process_time() - start) / 60.0
    result["wall_minutes"] = (time.perf_counter() - wall) / 60.0
    result["steps"] = args.steps
    return result


def mpe_env():
    from mpe2 import simple_spread_v3

    return simple_spread_v3.parallel_env(
        N=3, local_ratio=0.5, max_cycles=MPE_STEPS, continuous_actions=False
    )


def mpe_run(algorithm: str, seed: int, args) -> dict:
    """Train one learner on simple_spread for ``--mpe-steps``; mean team return after."""
    import torch

    from agents.marl.agent import AGENTS
    from agents.marl.team_env import ParallelTeamEnv

    torch.set_num_threads(1)
    start = time.process_time()
    train_env, eval_env = (
        ParallelTeamEnv(mpe_env(), MPE_STEPS),
        ParallelTeamEnv(mpe_env(), MPE_STEPS),
    )
    returns = []
    try:
        if algorithm == "random":
            rng = np.random.default_rng(seed)
            for episode in range(args.episodes):
                eval_env.reset(seed=EVAL_SEED + episode)
                total, over = 0.0, False
                while not over:
                    step = eval_env.step(rng.integers(0, eval_env.n_actions, eval_env.n_agents))
                    total, over = total + step[3], step[4] or step[5]
                returns.append(total)
        else:
            hp = {"epsilon_steps": args.mpe_steps // 2, "reward_scale": 1.0, **BENCH_HP}
            agent = AGENTS[algorithm].create(train_env, seed=seed, **hp)
            agent.learn(args.mpe_steps)
            for episode in range(args.episodes):
                returns.append(agent.run_episode(eval_env, 0.0, seed=EVAL_SEED + episode)["return"])
    finally:
        train_env.close()
        eval_env.close()
    return {
        "mean_return": float(np.mean(returns)),
        "cpu_minutes": (time.process_time() - start) / 60,
    }


def matrix_run(algorithm: str, seed: int, args) -> dict:
    import torch

    from agents.marl import matrix_game

    torch.set_num_threads(1)
    start = time.process_time()
    check = matrix_game.quantile_check(matrix_game.train(algorithm, args.matrix_episodes, seed))
    return {**check, "cpu_minutes": (time.process_time() - start) / 60.0}


def matrix_rows(results: dict, args) -> list[list[object]]:
    rows = []
    for algorithm in args.algorithms:
        for seed in args.seeds:
            run = results.get(f"matrix-{algorithm}@s{seed}")
            if run is not None:
                branch = "2A (7)" if run["closed_form"][2] == 7.0 else "2B (8)"
                learned = " ".join(f"{q:.1f}" for q in run["learned"])
                truth = " ".join(f"{q:.1f}" for q in run["closed_form"])
                rows.append(
                    [algorithm, seed, branch, learned, truth, run["mean_error"]]
                    + [run["max_quantile_error"]]
                )
    return rows


def bird_rows(results: dict, args) -> list[list[object]]:
    rows = []
    for robots in args.robots:
        for algorithm in args.algorithms:
            found = {s: results.get(f"{algorithm}-{robots}@s{s}") for s in args.seeds}
            found = {s: r for s, r in found.items() if r is not None}
            if not found:
                continue
            runs = list(found.values())
            rates = [r["team_success_rate"] for r in runs]
            low, high = t_interval(rates)
            interval = f"[{low:.2f}, {high:.2f}]" if len(rates) > 1 else "n/a (one seed)"
            rows.append(
                [
                    algorithm,
                    robots,
                    " ".join(sorted({str(r.get("steps", args.steps)) for r in runs})),
                    len(runs),
                    float(np.mean(rates)),
                    interval,
                    " ".join(f"s{s} {r['team_success_rate']:.2f}" for s, r in found.items()),
                    float(np.mean([r["robot_collision_rate"] for r in runs])),
                    float(np.mean([r["scene_collision_rate"] for r in runs])),
                    float(np.mean([r["cpu_minutes"] for r in runs])),
                ]
            )
    return rows


def mpe_rows(results: dict, args) -> list[list[object]]:
    rows = []
    for algorithm in ("random", *args.algorithms):
        runs = [results.get(f"mpe-{algorithm}@s{seed}") for seed in args.seeds]
        runs = [r for r in runs if r is not None]
        if runs:
            means = [r["mean_return"] for r in runs]
            rows.append(
                [
                    algorithm,
                    len(runs),
                    float(np.mean(means)),
                    float(np.std(means)),
                    float(np.mean([r["cpu_minutes"] for r in runs])),
                ]
            )
    return rows


def print_tables(results: dict, args) -> None:
    from results import markdown_table

    if args.note:
        print(args.note + "\n")
    rows = bird_rows(results, args)
    if rows:
        print(
            "Bird arena, diffdrive robots, state+scan observations, training steps per seed in "
            f"the steps column, {args.max_episode_steps}-step episodes, goal radius {args.goal_radius} m, "
            f"{args.episodes} evaluation episodes per seed, hyper-parameters {BENCH_HP} "
            f"{args.hp}. Team success: all robots arrived, mean over seeds, 95% t-interval "
            "across seeds. Robot / scene collision: fraction of evaluation episodes. "
            "CPU min: one seed's training and evaluation.\n"
        )
        header = ["learner", "robots", "steps", "seeds", "team success", "95% CI", "per seed"]
        header += ["robot collision", "scene collision", "CPU min"]
        print(markdown_table(header, rows))
        short = [f"{row[0]}-{row[1]}" for row in rows if row[3] < len(args.seeds)]
        if short:
            print(
                f"\nRows with fewer than the {len(args.seeds)} seeds asked for ({', '.join(short)}):"
                " the other seeds' runs did not finish; CPU min gives the cost of each."
            )
    rows = mpe_rows(results, args)
    if rows:
        print(
            f"\nMPE simple_spread (3 agents, {MPE_STEPS} steps, local_ratio 0.5), "
            f"{args.mpe_steps} training steps per seed: mean team return over {args.episodes} "
            "episodes (higher is better), mean and std over seeds.\n"
        )
        print(markdown_table(["learner", "seeds", "team return", "std", "CPU min"], rows))
    rows = matrix_rows(results, args)
    if rows:
        print(
            f"\nTwo-step matrix game, noisy payoffs, {args.matrix_episodes} episodes of uniform "
            "exploration: Z_tot(s1, greedy) at tau 0.1, 0.25, 0.5, 0.75, 0.9 against the closed "
            "form of the greedy policy's return (expected-value learners give one number).\n"
        )
        header = ["learner", "seed", "greedy branch", "learned quantiles", "closed form"]
        print(markdown_table([*header, "mean error", "max quantile error"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-marl")
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    parser.add_argument("--robots", nargs="*", type=int, default=[2, 3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=200_000, help="training steps per seed")
    parser.add_argument(
        "--max-episode-steps",
        type=int,
        default=100,
        help="a robot that gives way needs its partner's passage and its own (about 20 steps each)",
    )
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes per seed")
    parser.add_argument("--hp", default="{}", help="JSON of learner hyper-parameters")
    parser.add_argument(
        "--goal-radius", type=float, default=0.0762, help="metres (default: one vehicle length)"
    )
    parser.add_argument("--mpe", action="store_true", help="add the MPE simple_spread rows")
    parser.add_argument("--mpe-steps", type=int, default=50_000)
    parser.add_argument("--matrix", action="store_true", help="add the two-step matrix game")
    parser.add_argument("--matrix-episodes", type=int, default=1500)
    parser.add_argument("--table", action="store_true", help="print the cached rows only")
    parser.add_argument("--write", action="store_true", help="with --table: write them too")
    parser.add_argument("--note", default="", help="a line to print above the tables")
    args = parser.parse_args()

    from results import load, tee, write_section

    from common.atomic import write_json_atomic

    cache = Path(args.out) / "results.json"
    results = json.loads(cache.read_text()) if cache.is_file() else {}
    load_at_start = load()
    if not args.table:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        # seed by seed, so that a run cut short still has every learner's first seeds
        jobs = [
            (f"{a}-{n}@s{s}", lambda a=a, n=n, s=s: bird_run(a, n, s, args))
            for n in args.robots
            for s in args.seeds
            for a in args.algorithms
        ]
        if args.mpe:
            jobs += [
                (f"mpe-{a}@s{s}", lambda a=a, s=s: mpe_run(a, s, args))
                for s in args.seeds
                for a in ("random", *args.algorithms)
            ]
        if args.matrix:
            jobs += [
                (f"matrix-{a}@s{s}", lambda a=a, s=s: matrix_run(a, s, args))
                for a in args.algorithms
                for s in args.seeds
            ]
        for key, job in jobs:
            if key not in results:
                results[key] = job()
                write_json_atomic(cache, results)
                print(f"{key}: {json.dumps(results[key])}", flush=True)
    with tee() as printed:
        print_tables(results, args)
    if not args.table or args.write:
        write_section("multi_agent", printed.getvalue(), load_at_start=load_at_start)


if __name__ == "__main__":
    main()
