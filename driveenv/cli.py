"""The ``driveenv`` command: one argparse parser, sub-commands contributed by each package.

Each package keeps its commands in its own ``cli`` module exposing ``register(subparsers)``;
a command's options are generated from its typed configs when that command is parsed, and heavy
imports (torch, pycolmap, pybullet) happen inside the command functions, so that
``driveenv --help`` stays instant. A ``DriveEnvError`` becomes one line on stderr and exit
code 1; Ctrl-C becomes exit code 130 (every long step resumes where it stopped).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from common.commands import CommandGroup, HelpFormatter
from common.errors import DriveEnvError
from driveenv import __version__

# Modules whose ``register(subparsers)`` adds sub-commands, in the order of the pipeline.
COMMAND_MODULES = (
    "scene_builder.cli_capture",  # capture, poses, import-poses, align
    "scene_builder.cli_field",  # train-field, import-field
    "scene_builder.cli_scene",  # mesh, build-scene, scene-info
    "simulator.cli",  # drive, rollout
    "agents.cli",  # train, demos
    "eval.cli",  # evaluate, report
    "eval.cli_plan",  # plan-trials
    "driveenv.cli_demo",  # demo
)
# Commands that resume when run again (train-field says its own --resume command).
RESUMING = ("poses", "build-scene", "train", "evaluate", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driveenv",
        description="Build a simulator from a video of a real place, train agents in it, "
        "and forecast how they will do in the real place.",
        formatter_class=HelpFormatter,
        epilog="Run 'driveenv COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"driveenv {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", action=CommandGroup)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    importlib.import_module("simulator.cli").EXPERT_FACTORY = _make_expert
    return parser


def _make_expert(env):
    """The agents' scripted expert, for ``driveenv rollout --policy expert``."""
    from agents.experts import make_expert

    return make_expert(env)


def interrupt_hint(command: str) -> str:
    """What to run after Ctrl-C: the commands in RESUMING continue where they stopped when run
    again; the others write their output atomically at the end, so nothing was kept."""
    if command in RESUMING:
        return "run the same command again to resume"
    return "nothing was written; run the same command again to start over"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except DriveEnvError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:  # a command may say how it resumes
        print(f"interrupted: {str(interrupt) or interrupt_hint(args.command)}", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
