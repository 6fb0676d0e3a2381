"""Every ``driveenv`` command shown in the README is a valid command line as written.

The commands themselves run in the CLI tests of each package (capture, poses, train, evaluate,
report, demo ...); this test catches a README that drifts from the parser: a renamed option, a
removed sub-command, a missing required argument.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from driveenv import cli

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("driveenv "):
                commands.append(line)
    return commands


def test_readme_shows_the_main_commands():
    shown = {shlex.split(c)[1] for c in readme_commands()}
    for name in ("capture", "poses", "align", "build-scene", "train", "evaluate", "report"):
        assert name in shown, f"the README shows no 'driveenv {name}' example"


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses(command):
    args = cli.build_parser().parse_args(shlex.split(command)[1:])
    assert callable(args.func)
