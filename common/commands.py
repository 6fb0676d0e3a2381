"""Shared shape of every ``driveenv`` sub-command: one help formatter, an examples epilog, and
options added on first use.

Each package's ``cli`` module adds its sub-commands through ``add_command``; the ``driveenv``
package (the top) owns the parser that collects them, so no package imports the top. A
command's options are generated from its configs (``common.config_cli``), whose modules import
torch, trimesh or matplotlib; ``add_command`` therefore takes them as a function that runs only
when that command is parsed, so ``driveenv --help`` and a light command stay instant.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

Options = Callable[[argparse.ArgumentParser], None]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the hand-made line breaks of examples in epilogs."""

    def _get_help_string(self, action):
        if action.required or "default" in (action.help or ""):  # it says its default itself
            return action.help
        return super()._get_help_string(action)


class CommandGroup(argparse._SubParsersAction):
    """The sub-commands' action (``add_subparsers(action=CommandGroup)``): adds the chosen
    command's options before its arguments are parsed."""

    def __call__(self, parser, namespace, values, option_string=None):
        command = self._name_parser_map.get(values[0])
        if command is not None:
            configure(command)
        super().__call__(parser, namespace, values, option_string)


def add_command(
    subparsers, name: str, func, help: str, examples: str, options: Options | None = None
) -> argparse.ArgumentParser:
    """Add one sub-command with the shared formatter, an 'examples' epilog and its options
    (``options(parser)``, run when the command is first parsed)."""
    command = subparsers.add_parser(
        name,
        help=help,
        description=help,
        epilog="examples:\n" + examples.strip("\n"),
        formatter_class=HelpFormatter,
    )
    command.set_defaults(func=func)
    command.pending_options = options
    return command


def configure(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add a sub-command's options if they are still pending; returns the command."""
    options = getattr(command, "pending_options", None)
    if options is not None:
        command.pending_options = None
        options(command)
    return command


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every sub-command of ``parser`` by name, with all its options added."""
    group = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: configure(command) for name, command in group.choices.items()}
