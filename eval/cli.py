"""Sub-commands of ``driveenv`` from eval: evaluate, report."""

from __future__ import annotations

from common.commands import add_command


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
    evaluate = add_command(
        subparsers,
        "evaluate",
        run_evaluate,
        help="Run every agent under every lighting condition on the same seeded episodes.",
        examples="  driveenv evaluate runs/ppo runs/sac expert --scene assets/scenes/bird "
        "--episodes 20 --lighting capture,dim --out runs/eval --workers 2\n"
        "  driveenv evaluate runs/ppo --scene runs/scene --seeds 0-9,100 --out runs/eval  "
        "# run again to resume",
    )
    evaluate.add_argument(
        "runs", nargs="+", help="run folders of 'driveenv train', or random / expert"
    )
    evaluate.add_argument("--scene", required=True, help="scene bundle directory")
    evaluate.add_argument(
        "--out", required=True, help="evaluation directory (resumed if it exists)"
    )
    evaluate.add_argument(
        "--episodes", type=int, default=10, help="episodes per agent and condition"
    )
    evaluate.add_argument(
        "--seed", type=int, default=0, help="first episode seed (seeds seed..seed+episodes-1)"
    )
    evaluate.add_argument("--seeds", help="explicit episode seeds instead, e.g. 0-9,100")
    evaluate.add_argument(
        "--lighting", default="capture", help="comma-separated lighting presets (conditions)"
    )
    evaluate.add_argument(
        "--renderer",
        choices=("mesh", "field"),
        default="mesh",
        help="camera renderer for image agents",
    )
    evaluate.add_argument(
        "--task", choices=("goal", "route"), default="goal", help="task of every episode"
    )
    evaluate.add_argument(
        "--spawn",
        choices=("scene", "random"),
        default="scene",
        help="scene: the bundle's spawn/goal/route triples; random: new ones drawn from each seed",
    )
    evaluate.add_argument(
        "--max-steps", type=int, default=None, help="episode step limit (default: the env's)"
    )
    evaluate.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    evaluate.add_argument(
        "--overwrite", action="store_true", help="discard episodes already in --out"
    )

    report = add_command(
        subparsers,
        "report",
        run_report,
        help="Compare simulated and real results, forecast real success, write report.html.",
        examples="  driveenv report --sim runs/eval --real trials.csv --scene assets/scenes/bird --out runs/report\n"
        "  driveenv report --sim runs/eval --real assets/examples/real_trials_example.csv "
        "--scene assets/scenes/bird --out runs/report --no-fidelity",
    )
    report.add_argument("--sim", required=True, help="evaluation directory of 'driveenv evaluate'")
    report.add_argument(
        "--real", help="real trial log (CSV); without it the report forecasts from the prior"
    )
    report.add_argument("--scene", required=True, help="the scene bundle the evaluation ran on")
    report.add_argument("--out", required=True, help="report directory (report.html, summary.json)")
    report.add_argument(
        "--seed", type=int, default=0, help="seed of the bootstrap and forecast draws"
    )
    report.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    report.add_argument("--no-fidelity", action="store_true", help="skip rendering held-out frames")
    report.add_argument(
        "--fidelity-frames", type=int, default=4, help="held-out frames rendered per preset"
    )
    report.add_argument("--overwrite", action="store_true", help="replace an existing report")


def run_evaluate(args) -> int:
    import shutil
    from pathlib import Path

    from eval.errors import CampaignError
    from eval.rollouts import CampaignConfig, agent_specs, parse_seeds, run_campaign
    from scene_builder.bundle import load_scene

    scene = load_scene(args.scene)
    conditions = [c.strip() for c in args.lighting.split(",") if c.strip()]
    unknown = [c for c in conditions if c not in scene.lighting and c != "random"]
    if unknown:
        raise CampaignError(
            f"--lighting {','.join(unknown)}: not a preset of scene {scene.name!r} "
            f"(it has {', '.join(scene.lighting)}, or random)"
        )
    if args.episodes < 1 and not args.seeds:
        raise CampaignError(f"--episodes {args.episodes}: must be at least 1")
    if args.workers < 1:
        raise CampaignError(f"--workers {args.workers}: must be at least 1")
    seeds = (
        parse_seeds(args.seeds) if args.seeds else list(range(args.seed, args.seed + args.episodes))
    )
    config = CampaignConfig(
        scene=Path(args.scene),
        agents=agent_specs(args.runs),
        conditions=conditions,
        seeds=seeds,
        renderer=args.renderer,
        max_episode_steps=args.max_steps,
        workers=args.workers,
        task=args.task,
        spawn=args.spawn,
    )
    out = Path(args.out)
    if args.overwrite and out.exists():
        shutil.rmtree(out)
    campaign = run_campaign(config, out)
    for agent in config.agents:
        for condition in conditions:
            wins = campaign.outcomes(agent.name, condition)
            print(f"{agent.name:>16} {condition:>10}: {int(wins.sum())}/{wins.size} succeeded")
    print(f"episodes: {out / 'episodes.csv'}")
    return 0


def run_report(args) -> int:
    from eval.report import ReportConfig, write_report

    path = write_report(
        ReportConfig(
            sim=args.sim,
            real=args.real,
            scene=args.scene,
            out=args.out,
            seed=args.seed,
            n_bootstrap=args.bootstrap,
            fidelity=not args.no_fidelity,
            fidelity_frames=args.fidelity_frames,
            overwrite=args.overwrite,
        )
    )
    print(f"report: {path}")
    return 0
