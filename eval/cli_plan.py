"""Sub-command of ``driveenv`` from eval: plan-trials."""

from __future__ import annotations

from common.commands import add_command


def register(subparsers) -> None:
    """Add ``plan-trials`` to the ``driveenv`` parser."""
    command = add_command(
        subparsers,
        "plan-trials",
        run_plan_trials,
        help="How many more real trials bring each agent's interval to a width, with and "
        "without the simulation.",
        examples="  driveenv plan-trials --sim runs/eval --real trials.csv --width 0.10\n"
        "  driveenv plan-trials --sim runs/eval --real trials.csv --width 0.2 --confidence 0.9",
    )
    command.add_argument("--sim", required=True, help="evaluation directory of 'driveenv evaluate'")
    command.add_argument(
        "--real",
        required=True,
        help="real trial log (CSV); a 'seed' column pairs each trial with its simulated episode",
    )
    command.add_argument(
        "--width", type=float, default=0.10, help="target interval width (0.10 = 10 points)"
    )
    command.add_argument("--confidence", type=float, default=0.95, help="interval confidence")


def run_plan_trials(args) -> int:
    from eval.errors import CampaignError, EvalError
    from eval.planner import MAX_TRIALS, plan_trials
    from eval.real_logs import load_trials
    from eval.rollouts import load_campaign

    if not 0 < args.width < 1:
        raise EvalError(f"--width must be between 0 and 1 (a share of success), got {args.width}")
    if not 0 < args.confidence < 1:
        raise EvalError(f"--confidence must be between 0 and 1, got {args.confidence}")
    campaign = load_campaign(args.sim)
    trials = load_trials(args.real, known_agents=campaign.finished_agents)
    missing = [c for c in trials.conditions if c not in campaign.conditions]
    if missing:
        raise CampaignError(
            f"{trials.path}: condition(s) {', '.join(missing)} were not simulated in "
            f"{campaign.root} (it has {', '.join(campaign.conditions)})"
        )
    verdict, plan = plan_trials(campaign, trials, args.width, args.confidence)
    print(
        ("simulation helps: " if verdict.helps else "simulation does not help: ") + verdict.reason
    )

    def more(value: int | None) -> str:
        return f">{MAX_TRIALS}" if value is None else str(value)

    print(
        f"{'agent':<16} {'condition':<12} {'trials':>6} {'width now':>10} "
        f"{'more (real only)':>17} {'more (with sim)':>16}"
    )
    for row in plan:
        now = row.width_with_sim if row.sim_used else row.width_real_only
        print(
            f"{row.agent:<16} {row.condition or 'all':<12} {row.trials:>6} {now:>10.3f} "
            f"{more(row.more_real_only):>17} {more(row.more_with_sim):>16}"
        )
    for row in plan:
        print(row.sentence(args.width))
    return 0
