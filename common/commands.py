"""Shared shape of every ``driveenv`` sub-command: one help formatter, an examples epilog.

Each package's ``cli`` module adds its sub-commands through ``add_command``; the ``driveenv``
package (the top) owns the parser that collects them, so no package imports the top.
"""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the hand-made line breaks of examples in epilogs."""


def add_command(subparsers, name: str, func, help: str, examples: str) -> argparse.ArgumentParser:
    """Add one sub-command with the shared formatter and an 'examples' epilog."""
    command = subparsers.add_parser(
        name,
        help=help,
        description=help,
        epilog="examples:\n" + examples.strip("\n"),
        formatter_class=HelpFormatter,
    )
    command.set_defaults(func=func)
    return command
