"""The driveenv command: every sub-command has help with examples; project errors are one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from common.errors import DriveEnvError
from driveenv import cli


def subcommands() -> list[str]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_every_subcommand_has_help_with_examples(capsys):
    names = subcommands()
    assert "demo" in names
    for name in names:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([name, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out, f"'driveenv {name} --help' shows no examples"
        assert f"driveenv {name}" in out


def test_project_error_is_one_line_and_exit_code_1(monkeypatch, capsys):
    def failing(args):
        raise DriveEnvError("scene.json: missing field 'name'")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser.set_defaults(func=failing)
    assert cli.main([]) == 1
    err = capsys.readouterr().err
    assert err == "error: scene.json: missing field 'name'\n"


def test_console_script_runs_without_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "driveenv.cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.startswith("driveenv ")
