"""Sub-commands of ``driveenv`` from eval: evaluate, report."""

from __future__ import annotations

from dataclasses import dataclass

from common.commands import add_command
from common.config_cli import add_config, make_config, option
from common.ray_cluster import add_ray_flag
from simulator.cli import add_env_options

EVALUATE_EXAMPLES = """
  driveenv evaluate runs/ppo runs/sac expert --scene assets/scenes/bird --episodes 20 \\
      --lighting capture,dim --out runs/eval --workers 2
  driveenv evaluate runs/ppo --scene runs/scene --seeds 0-9,100 --out runs/eval  # run again to resume
  driveenv evaluate runs/ppo expert --scene assets/scenes/bird --episodes 200 --out runs/eval --ray auto
"""

REPORT_EXAMPLES = """
  driveenv report --sim runs/eval --real trials.csv --scene assets/scenes/bird --out runs/report
  driveenv report --sim runs/eval --real assets/examples/real_trials_example.csv \\
      --scene assets/scenes/bird --out runs/report --no-fidelity
"""

# The environment options a campaign sets for every agent (the rest come from each run's own
# run.json); --lighting takes several presets, comma-separated: one condition each.
CAMPAIGN_ENV_OPTIONS = ("scene", "lighting", "renderer", "task", "spawn", "max_episode_steps")


@dataclass
class EvaluateOptions:
    """``driveenv evaluate``'s own options: which agents, which episodes, where."""

    runs: list[str] = option(
        help="run folders of 'driveenv train', or random / expert; RUN@RENDERER (baked, mesh, "
        "field) evaluates RUN with that camera too: the report then shows the camera transfer gap"
    )
    out: str = option(help="evaluation directory (resumed if it exists)")
    episodes: int = option(10, "episodes per agent and condition")
    seed: int = option(0, "first episode seed (seeds seed..seed+episodes-1)")
    seeds: str | None = option(None, "explicit episode seeds instead, e.g. 0-9,100")
    overwrite: bool = option(False, "discard episodes already in --out")
    trust_pickles: bool = option(
        False,
        "RISK: open run folders saved in Stable-Baselines3's pickled format; unpickling runs any "
        "code the file holds, with your permissions: only for runs you made or trust",
    )


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
    add_command(
        subparsers,
        "evaluate",
        run_evaluate,
        help="Run every agent under every lighting condition on the same seeded episodes.",
        examples=EVALUATE_EXAMPLES,
        options=_evaluate_options,
    )
    add_command(
        subparsers,
        "report",
        run_report,
        help="Compare simulated and real results, forecast real success, write report.html.",
        examples=REPORT_EXAMPLES,
        options=_report_options,
    )


def _evaluate_options(parser) -> None:
    from eval.rollouts import CampaignConfig

    add_config(parser, EvaluateOptions, positional=("runs",))
    add_env_options(parser, include=CAMPAIGN_ENV_OPTIONS)
    add_config(parser, CampaignConfig, include=("workers",))
    add_ray_flag(parser, "the campaign's episode chunks")


def _report_options(parser) -> None:
    from eval.report import ReportConfig

    add_config(parser, ReportConfig)


def _campaign(args):
    """The campaign config of the parsed arguments, checked against the scene's presets."""
    from common.seeds import parse_seed_list
    from eval.errors import CampaignError
    from eval.rollouts import CampaignConfig, agent_specs
    from scene_builder.bundle import load_scene
    from simulator.config import EnvConfig

    options = make_config(EvaluateOptions, args)
    env = make_config(EnvConfig, args)  # checks task, spawn and renderer
    scene = load_scene(env.scene)
    conditions = [c.strip() for c in env.lighting.split(",") if c.strip()]
    unknown = [c for c in conditions if c not in scene.lighting and c != "random"]
    if unknown:
        raise CampaignError(
            f"--lighting {','.join(unknown)}: not a preset of scene {scene.name!r} "
            f"(it has {', '.join(scene.lighting)}, or random)"
        )
    if options.episodes < 1 and not options.seeds:
        raise CampaignError(f"--episodes {options.episodes}: must be at least 1")
    if args.workers < 1:
        raise CampaignError(f"--workers {args.workers}: must be at least 1")
    first = options.seed
    seeds = (
        parse_seed_list(options.seeds)
        if options.seeds
        else list(range(first, first + options.episodes))
    )
    campaign = make_config(
        CampaignConfig,
        args,
        scene=env.scene,
        agents=agent_specs(options.runs, options.trust_pickles),
        conditions=conditions,
        seeds=seeds,
    )
    return campaign, options


def run_evaluate(args) -> int:
    import shutil
    from pathlib import Path

    from eval.rollouts import CAMPAIGN_FILE, run_campaign
    from eval.team_records import run_team_campaign, team_agents

    config, options = _campaign(args)
    teams = team_agents(config.agents)
    out = Path(options.out)
    if options.overwrite and out.exists():
        shutil.rmtree(out)
    existed, resumed = out.exists(), (out / CAMPAIGN_FILE).is_file()
    try:
        if teams:  # multi-robot runs: eval.team_records
            campaign = run_team_campaign(config, out)
        else:
            campaign = run_campaign(config, out, ray_address=args.ray)
    except BaseException as error:
        if not resumed:
            _remove_unstarted(out, existed)
        if isinstance(error, KeyboardInterrupt) and options.overwrite:
            raise KeyboardInterrupt(
                "run the same command again without --overwrite to resume"
            ) from None
        raise
    for agent in config.agents:
        for condition in config.conditions:
            wins = campaign.outcomes(agent.name, condition)
            print(f"{agent.name:>16} {condition:>10}: {int(wins.sum())}/{wins.size} succeeded")
    print(f"episodes: {out / 'episodes.csv'}")
    return 0


def _remove_unstarted(out, existed: bool) -> None:
    """After a new campaign failed before any episode finished: remove what it created
    (campaign.json, empty episode folders, or ``out`` itself when it did not exist)."""
    import shutil

    from eval.rollouts import CAMPAIGN_FILE, EPISODES_DIR

    episodes = out / EPISODES_DIR
    if any(episodes.rglob("*.json")):
        return  # finished episodes: keep them, the next run resumes from them
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    shutil.rmtree(episodes, ignore_errors=True)
    (out / CAMPAIGN_FILE).unlink(missing_ok=True)


def run_report(args) -> int:
    from eval.report import ReportConfig, write_report

    path = write_report(make_config(ReportConfig, args))
    print(f"report: {path}")
    return 0
