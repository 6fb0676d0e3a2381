"""Sub-commands of ``driveenv`` from eval: evaluate, report, demo."""

from __future__ import annotations

from driveenv.cli import add_command


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
    demo = add_command(
        subparsers,
        "demo",
        run_demo,
        help="Run the whole pipeline on the shipped bird scene and write a report.",
        examples="  driveenv demo --quick\n  driveenv demo --out runs/demo",
    )
    demo.add_argument("--quick", action="store_true", help="a first look in under 2 minutes")
    demo.add_argument("--out", default="runs/demo", help="output folder")


def run_demo(args) -> int:
    print("not yet: the demo lands with the scene, simulator, agents and eval pieces.")
    return 0
