"""Sub-commands of ``driveenv`` from agents: train, demos."""

from __future__ import annotations

from dataclasses import dataclass, fields

from common.commands import add_command
from common.config_cli import add_config, make_config, option
from common.ray_cluster import add_ray_flag
from simulator.cli import add_env_options

TRAIN_EXAMPLES = """
  driveenv train ppo --scene runs/synthetic --task goal --obs state --steps 100000 --out runs/ppo --num-envs 8
  driveenv train meow --scene runs/synthetic --obs state --steps 30000 --out runs/meow --seed 1
  driveenv train bc --scene runs/synthetic --demos runs/demos.npz --steps 3000 --out runs/bc
  driveenv train tdil --scene runs/synthetic --demos runs/demos.npz --steps 20000 --out runs/tdil
  driveenv train sac --scene assets/scenes/bird --obs rgb --renderer field --num-envs 8 --steps 20000 --out runs/bird-sac
  driveenv train sac ... --hp learning_rate=3e-4 --hp batch_size=128   # override hyper-parameters
  driveenv train tdil --scene runs/synthetic --demos runs/demos.npz --steps 6000 --out runs/tdil-sweep --seeds 0-7 --ray
  driveenv train dmix --scene assets/scenes/bird --agents 2 --vehicle diffdrive --steps 30000 --out runs/dmix
Run the same command again to resume an interrupted run; tensorboard --logdir RUN/tb shows it.
"""

DEMOS_EXAMPLES = """
  driveenv demos --scene runs/synthetic --episodes 20 --out runs/demos.npz
  driveenv demos --scene assets/scenes/bird --obs rgb+state --renderer field --episodes 10 --out runs/bird-demos.npz
"""


TRUST_PICKLES_HELP = (
    "RISK: resume a run saved in Stable-Baselines3's pickled format (agent.zip with a 'data' "
    "entry, replay_buffer.pkl); unpickling runs any code the file holds, with your permissions: "
    "only for a run you made or trust"
)


@dataclass
class RunOptions:
    """Where ``driveenv train`` writes its run."""

    out: str = option(help="run directory (run.json, checkpoint, tb/)")
    overwrite: bool = option(False, "replace an existing run in --out")
    trust_pickles: bool = option(False, TRUST_PICKLES_HELP)
    seeds: str | None = option(
        None, "train once per seed (e.g. 0-7) into OUT/seed_K and pool their success"
    )
    sweep_episodes: int = option(100, "evaluation episodes per seed after a --seeds sweep")


@dataclass
class DemosOptions:
    """``driveenv demos``'s own options (the environment's are EnvConfig's)."""

    out: str = option(help="output .npz file")
    episodes: int = option(20, "episodes to record")
    overwrite: bool = option(False, "replace an existing --out file")

    def __post_init__(self) -> None:
        if self.episodes < 1:
            from agents.errors import DemoError

            raise DemoError(f"--episodes {self.episodes}: must be at least 1")


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
    import simulator.cli

    simulator.cli.TEAM_FACTORY = _team_driver  # driveenv rollout --agents N --team RUN
    simulator.cli.AGENT_FACTORY = _agent_driver  # driveenv rollout --agent RUN
    add_command(
        subparsers,
        "train",
        train_command,
        help="Train an agent in a scene (PPO, SAC, MEow, BC, TDIL, diffusion policy, QSM).",
        examples=TRAIN_EXAMPLES,
        options=_train_options,
    )
    add_command(
        subparsers,
        "demos",
        demos_command,
        help="Record demonstrations of the privileged scripted expert (all sensors, actions, outcomes).",
        examples=DEMOS_EXAMPLES,
        options=_demos_options,
    )


def _team_driver(run_dir):
    from agents.marl.agent import team_driver

    return team_driver(run_dir)


def _agent_driver(run_dir):
    from agents.train import load_run_agent, read_run

    agent = load_run_agent(run_dir)
    return (lambda obs: agent.predict(obs, deterministic=True)[0]), read_run(run_dir)["config"][
        "obs"
    ]


def _train_options(parser) -> None:
    from agents.train import TrainConfig

    add_config(parser, TrainConfig, include=("algorithm",), positional=("algorithm",))
    add_env_options(parser)  # TrainConfig's environment fields take the group's flags
    add_config(parser, TrainConfig, exclude=("env_options",), title="training options")
    add_config(parser, RunOptions)
    add_ray_flag(parser, "a --seeds sweep's seeds")


def _demos_options(parser) -> None:
    add_env_options(parser)
    add_config(parser, DemosOptions)


def train_command(args) -> int:
    from agents.marl import MARL_ALGORITHMS
    from agents.train import RUN_FILE, train
    from common.cleanup import removed_on_failure
    from common.progress import progress_bar

    config = train_config(args)
    marl = config.algorithm in MARL_ALGORITHMS
    if marl:  # several robots: agents.marl's driver (saves no pickles to trust)
        from agents.marl.train import train_marl as train
    elif config.env_options.get("agents", 1) > 1:
        from agents.errors import AgentError

        raise AgentError(
            f"{config.algorithm} drives one vehicle; --agents needs {'|'.join(MARL_ALGORITHMS)}"
        )
    run_options = make_config(RunOptions, args)
    if run_options.seeds or args.ray is not None:
        return _sweep_command(config, run_options, args.ray)

    def resumable(out):  # run.json written: the same command resumes from it
        return (out / RUN_FILE).is_file()

    try:
        with removed_on_failure(run_options.out, resumable), progress_bar() as progress:
            run = train(
                config,
                run_options.out,
                overwrite=run_options.overwrite,
                progress=progress,
                **({} if marl else {"trust_pickles": run_options.trust_pickles}),
            )
    except KeyboardInterrupt:
        raise KeyboardInterrupt(resume_hint(run_options.overwrite)) from None
    last = run["evaluations"][-1] if run["evaluations"] else None
    summary = f"success {last['success_rate']:.0%} after {last['steps']} steps" if last else "done"
    print(f"{run_options.out}: {run['algorithm']} {summary}")
    return 0


def resume_hint(overwrite: bool) -> str:
    """After Ctrl-C: the same command resumes, but not with --overwrite (it would start over)."""
    if overwrite:
        return "run the same command again without --overwrite to resume"
    return "run the same command again to resume"


def _sweep_command(config, run_options: RunOptions, ray_address: str | None) -> int:
    from agents.errors import AgentError
    from agents.marl import MARL_ALGORITHMS
    from agents.sweep import sweep, sweep_table
    from common.progress import progress_bar
    from common.seeds import parse_seed_list

    if not run_options.seeds:
        raise AgentError("--ray runs a sweep: give the seeds to train, e.g. --seeds 0-7")
    if config.algorithm in MARL_ALGORITHMS:
        raise AgentError(f"--seeds: {config.algorithm} trains one run per command (no sweeps yet)")
    seeds = parse_seed_list(run_options.seeds)
    with progress_bar() as progress:
        state = sweep(
            config,
            seeds,
            run_options.out,
            episodes=run_options.sweep_episodes,
            ray_address=ray_address,
            overwrite=run_options.overwrite,
            progress=progress,
        )
    print(sweep_table(state))
    print(f"{run_options.out}: {config.algorithm} over seeds {run_options.seeds}")
    return 0


def train_config(args):
    """The ``TrainConfig`` of parsed ``driveenv train`` arguments (checked by the configs)."""
    from agents.train import TrainConfig
    from simulator.config import EnvConfig

    env = make_config(EnvConfig, args)
    return make_config(TrainConfig, args, env_options=_env_options(env, TrainConfig))


def _env_options(env, config_class) -> dict:
    """The environment options ``config_class`` has no field of, where they differ from
    ``EnvConfig``'s defaults (so run.json lists only what the user changed)."""
    own = {f.name for f in fields(config_class)}
    default = type(env)()
    return {
        f.name: getattr(env, f.name)
        for f in fields(env)
        if f.name not in own and getattr(env, f.name) != getattr(default, f.name)
    }


def demos_command(args) -> int:
    from pathlib import Path

    from agents.demos import record_demos, save_demos
    from agents.errors import DemoError
    from agents.experts import make_expert
    from common.progress import progress_bar
    from simulator import EnvConfig, make_env

    config = make_config(EnvConfig, args)
    options = make_config(DemosOptions, args)
    out = Path(options.out)
    if out.exists() and not options.overwrite:
        raise DemoError(f"{out}: exists; use --overwrite to replace it")
    env = make_env(config)
    try:
        with progress_bar() as progress:
            task = progress.add_task("demos", total=options.episodes, status="")

            def show(done):
                rate = sum(t.success for t in done) / len(done)
                progress.update(task, advance=1, status=f"success {rate:.0%}")

            trajectories = record_demos(env, make_expert(env), options.episodes, config.seed, show)
    finally:
        env.close()
    metadata = {"recorder": "agents.experts", "env_config": config.to_dict()}
    save_demos(out, trajectories, metadata)
    rate = sum(t.success for t in trajectories) / len(trajectories)
    print(f"{out}: {len(trajectories)} episodes, expert success {rate:.0%}")
    return 0
