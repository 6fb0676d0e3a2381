"""Sub-commands of ``driveenv`` from agents: train, demos."""

from __future__ import annotations

import json

from common.commands import add_command

TRAIN_EXAMPLES = """
  driveenv train ppo --scene runs/synthetic --task goal --obs state --steps 100000 --out runs/ppo --num-envs 8
  driveenv train meow --scene runs/synthetic --obs state --steps 30000 --out runs/meow --seed 1
  driveenv train bc --scene runs/synthetic --demos runs/demos.npz --steps 3000 --out runs/bc
  driveenv train tdil --scene runs/synthetic --demos runs/demos.npz --steps 20000 --out runs/tdil
  driveenv train sac --scene assets/scenes/bird --obs rgb --renderer field --num-envs 8 --steps 20000 --out runs/bird-sac
  driveenv train sac ... --hp learning_rate=3e-4 --hp batch_size=128   # override hyper-parameters
Run the same command again to resume an interrupted run; tensorboard --logdir RUN/tb shows it.
"""

DEMOS_EXAMPLES = """
  driveenv demos --scene runs/synthetic --episodes 20 --out runs/demos.npz
  driveenv demos --scene assets/scenes/bird --obs rgb+state --renderer field --episodes 10 --out runs/bird-demos.npz
"""


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
    from agents import ALGORITHMS

    train = add_command(
        subparsers,
        "train",
        train_command,
        help="Train an agent in a scene (PPO, SAC, MEow, BC, TDIL, diffusion policy, QSM).",
        examples=TRAIN_EXAMPLES,
    )
    train.add_argument(
        "algorithm",
        choices=sorted(ALGORITHMS),
        metavar="ALGO",
        help="one of: " + ", ".join(ALGORITHMS),
    )
    _environment_arguments(train)
    train.add_argument(
        "--steps", type=int, default=50_000, help="environment steps (BC: gradient steps)"
    )
    train.add_argument("--out", required=True, help="run directory (run.json, checkpoint, tb/)")
    train.add_argument(
        "--num-envs", type=int, default=1, help="parallel environments, rendered in one batch"
    )
    train.add_argument(
        "--checkpoint-every",
        type=int,
        default=10_000,
        help="steps between checkpoints and evaluations",
    )
    train.add_argument(
        "--eval-episodes", type=int, default=20, help="episodes per periodic evaluation"
    )
    train.add_argument("--demos", help="demonstrations .npz (bc, tdil, diffusion)")
    train.add_argument("--demo-count", type=int, help="use the first N successful demonstrations")
    train.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="algorithm hyper-parameter (JSON value)",
    )
    train.add_argument(
        "--threads", type=int, default=1, help="torch threads (small policies train fastest on one)"
    )
    train.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")

    demos = add_command(
        subparsers,
        "demos",
        demos_command,
        help="Record demonstrations of the privileged scripted expert (all sensors, actions, outcomes).",
        examples=DEMOS_EXAMPLES,
    )
    _environment_arguments(demos)
    demos.add_argument("--episodes", type=int, default=20, help="episodes to record")
    demos.add_argument("--out", required=True, help="output .npz file")
    demos.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def _environment_arguments(parser) -> None:
    parser.add_argument("--scene", required=True, help="scene bundle directory")
    parser.add_argument("--task", default="goal", choices=("goal", "route"))
    parser.add_argument(
        "--obs", default="state", help="sensors joined by '+': state, rgb, depth, scan"
    )
    parser.add_argument("--vehicle", default="car", choices=("car", "diffdrive"))
    parser.add_argument(
        "--renderer",
        default="mesh",
        choices=("field", "mesh"),
        help="camera renderer for rgb/depth",
    )
    parser.add_argument(
        "--spawn",
        default="random",
        choices=("random", "scene"),
        help="new spawn/goal each episode, or the scene's",
    )
    parser.add_argument("--max-episode-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)


def _hyperparameters(pairs: list[str]) -> dict:
    from agents.errors import AgentError

    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise AgentError(f"--hp {pair!r}: write KEY=VALUE, e.g. learning_rate=3e-4")
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values


def train_command(args) -> int:
    from agents.train import TrainConfig, train
    from common.progress import progress_bar

    config = TrainConfig(
        algorithm=args.algorithm,
        scene=args.scene,
        task=args.task,
        obs=args.obs,
        steps=args.steps,
        seed=args.seed,
        num_envs=args.num_envs,
        vehicle=args.vehicle,
        renderer=args.renderer,
        spawn=args.spawn,
        max_episode_steps=args.max_episode_steps,
        checkpoint_every=args.checkpoint_every,
        eval_episodes=args.eval_episodes,
        demos=args.demos,
        demo_count=args.demo_count,
        hyperparameters=_hyperparameters(args.hp),
        threads=args.threads,
    )
    with progress_bar() as progress:
        run = train(config, args.out, overwrite=args.overwrite, progress=progress)
    last = run["evaluations"][-1] if run["evaluations"] else None
    summary = f"success {last['success_rate']:.0%} after {last['steps']} steps" if last else "done"
    print(f"{args.out}: {run['algorithm']} {summary}")
    return 0


def demos_command(args) -> int:
    from pathlib import Path

    from agents.demos import record_demos, save_demos
    from agents.errors import DemoError
    from agents.experts import make_expert
    from common.progress import progress_bar
    from simulator import EnvConfig, make_env

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise DemoError(f"{out}: exists; use --overwrite to replace it")
    if args.episodes < 1:
        raise DemoError(f"--episodes {args.episodes}: must be at least 1")
    config = EnvConfig(
        scene=args.scene,
        vehicle=args.vehicle,
        obs=args.obs,
        renderer=args.renderer,
        task=args.task,
        spawn=args.spawn,
        max_episode_steps=args.max_episode_steps,
        seed=args.seed,
    )
    env = make_env(config)
    try:
        with progress_bar() as progress:
            task = progress.add_task("demos", total=args.episodes, status="")

            def show(done):
                rate = sum(t.success for t in done) / len(done)
                progress.update(task, advance=1, status=f"success {rate:.0%}")

            trajectories = record_demos(env, make_expert(env), args.episodes, args.seed, show)
    finally:
        env.close()
    metadata = {"recorder": "agents.experts", "env_config": config.to_dict()}
    save_demos(out, trajectories, metadata)
    rate = sum(t.success for t in trajectories) / len(trajectories)
    print(f"{out}: {len(trajectories)} episodes, expert success {rate:.0%}")
    return 0
