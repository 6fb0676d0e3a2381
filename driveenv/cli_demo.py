"""``driveenv demo``: registered by the top package, since the demo uses every package."""

from __future__ import annotations

from common.commands import add_command
from driveenv.demo import DEFAULT_SCENE


def register(subparsers) -> None:
    """Add the ``demo`` sub-command to the ``driveenv`` parser."""
    demo = add_command(
        subparsers,
        "demo",
        run_demo,
        help="Run the whole pipeline on the shipped bird scene and write a report.",
        examples="  driveenv demo --quick\n  driveenv demo --out runs/demo",
    )
    demo.add_argument("--quick", action="store_true", help="a first look in under 2 minutes")
    demo.add_argument("--out", default="runs/demo", help="output folder (resumed if it exists)")
    demo.add_argument("--scene", default=str(DEFAULT_SCENE), help="scene bundle to run in")
    demo.add_argument("--seed", type=int, default=0, help="seed of training and episodes")


def run_demo(args) -> int:
    from driveenv.demo import run_demo as demo

    demo(out=args.out, quick=args.quick, scene=args.scene, seed=args.seed)
    return 0
