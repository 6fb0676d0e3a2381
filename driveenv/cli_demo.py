"""``driveenv demo``: registered by the top package, since the demo uses every package."""

from __future__ import annotations

from dataclasses import dataclass

from common.commands import add_command
from common.config_cli import add_config, make_config, option
from driveenv.demo import DEFAULT_SCENE


@dataclass
class DemoOptions:
    """Options of ``driveenv demo``; the demo fixes its own environments and agents."""

    quick: bool = option(False, "a first look in under 2 minutes")
    out: str = option("runs/demo", "output folder (resumed if it exists)")
    scene: str = option(str(DEFAULT_SCENE), "scene bundle directory")
    seed: int = option(0, "seed of training and episodes")


def register(subparsers) -> None:
    """Add the ``demo`` sub-command to the ``driveenv`` parser."""
    add_command(
        subparsers,
        "demo",
        run_demo,
        help="Run the whole pipeline on the shipped bird scene and write a report.",
        examples="  driveenv demo --quick\n  driveenv demo --out runs/demo\n"
        "  driveenv demo --quick --scene assets/scenes/street",
        options=lambda parser: add_config(parser, DemoOptions),
    )


def run_demo(args) -> int:
    from common.cleanup import removed_on_failure
    from driveenv.demo import run_demo as demo

    options = make_config(DemoOptions, args)
    with removed_on_failure(options.out, resumable=lambda out: any(out.iterdir())):
        demo(out=options.out, quick=options.quick, scene=options.scene, seed=options.seed)
    return 0
