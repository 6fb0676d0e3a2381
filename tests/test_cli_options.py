"""Every ``driveenv`` option is declared once, on a typed config, and means one thing everywhere.

The parsers are walked as ``driveenv.cli.build_parser()`` builds them, so a command that copies
an environment option with another default, or gives a flag a second meaning, fails here.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from common.commands import command_parsers
from common.config_cli import add_config, flag_name, make_config, option
from driveenv import cli
from simulator.config import EnvConfig

ROOT = Path(__file__).resolve().parents[1]
ENV_COMMANDS = ("train", "demos", "evaluate", "rollout", "drive")
ENV_FIELDS = {f.name: f for f in dataclasses.fields(EnvConfig)}
# Flags whose value is naturally the command's own: where it writes, and how many episodes it
# runs (a video shows one, a demonstration set twenty, an evaluation ten per condition).
PER_COMMAND = {"--out", "--episodes"}


@pytest.fixture(scope="module")
def commands() -> dict:
    return command_parsers(cli.build_parser())


def flags(parser):
    """``(flag, action)`` for every optional flag of a sub-command, help excluded."""
    for action in parser._actions:
        for string in action.option_strings:
            if string.startswith("--") and string != "--help":
                yield string, action


def test_every_environment_option_has_the_envconfig_default(commands):
    checked = 0
    for name, parser in commands.items():
        for string, action in flags(parser):
            field = ENV_FIELDS.get(action.dest)
            if field is None or string != flag_name(field) or field.name == "scene":
                continue
            assert action.default == field.default, f"driveenv {name} {string}"
            if name in ENV_COMMANDS and field.name != "seed":  # each command seeds its own work
                assert action.help == field.metadata["help"].replace("%", "%%"), string
                assert action.choices == field.metadata["choices"], string
                checked += 1
    assert checked > 3 * len(ENV_FIELDS)  # the group is there, in train, demos, rollout, drive


def test_no_flag_has_two_meanings_or_defaults(commands):
    seen: dict[str, tuple] = {}
    for name, parser in commands.items():
        for string, action in flags(parser):
            if string in PER_COMMAND or action.required:  # a required flag has no default
                continue
            meaning = (action.default, tuple(action.choices or ()), action.nargs, action.const)
            first = seen.setdefault(string, (name, meaning))
            assert first[1] == meaning, f"{string}: {first[0]} {first[1]} vs {name} {meaning}"
    for renamed in ("--resolution", "--downscale", "--max-steps", "--max-minutes"):
        assert renamed not in seen, f"{renamed} is back, with two meanings"
    scene_dests = {a.dest for p in commands.values() for s, a in flags(p) if s == "--scene"}
    assert scene_dests == {"scene"}  # a bundle path everywhere; the field's kind is --scene-mode
    assert "--scene-mode" in seen and "--tsdf-resolution" in seen


def test_every_environment_field_is_reachable_from_train_and_demos(commands):
    for name in ("train", "demos"):
        dests = {action.dest for action in commands[name]._actions}
        assert set(ENV_FIELDS) <= dests, f"driveenv {name} lacks {set(ENV_FIELDS) - dests}"
    for name in ENV_COMMANDS:
        dests = {action.dest for action in commands[name]._actions}
        assert {"scene", "renderer", "max_episode_steps", "lighting"} <= dests, name


def parse(command: str):
    return cli.build_parser().parse_args(shlex.split(command)[1:])


def test_a_readme_train_command_gives_the_expected_config():
    from agents.cli import train_config

    args = parse(
        "driveenv train ppo --scene runs/synthetic --obs state+scan --spawn random "
        "--max-episode-steps 200 --steps 75000 --num-envs 8 --out runs/ppo "
        "--camera-fov-deg 70 --hp learning_rate=3e-4 --hp net=[64,64]"
    )
    config = train_config(args)
    assert (config.algorithm, config.steps, config.num_envs) == ("ppo", 75000, 8)
    assert config.hyperparameters == {"learning_rate": 3e-4, "net": [64, 64]}
    env = config.env_config()
    assert (env.obs, env.spawn, env.max_episode_steps) == ("state+scan", "random", 200)
    assert env.camera_fov_deg == 70.0 and config.env_options == {"camera_fov_deg": 70.0}
    assert env.image_size == EnvConfig.image_size and env.lighting == EnvConfig.lighting
    # Without the flags, EnvConfig's defaults, not the Python TrainConfig's.
    plain = train_config(parse("driveenv train ppo --scene s --out o"))
    assert (plain.spawn, plain.max_episode_steps) == (EnvConfig.spawn, EnvConfig.max_episode_steps)


def test_a_readme_build_command_gives_the_expected_config():
    from scene_builder.align import AlignConfig
    from scene_builder.cli_scene import build_config
    from scene_builder.mesh import MeshConfig

    args = parse(
        "driveenv build-scene ../shared/data/bird_capture/images --poses "
        "../shared/data/bird_capture/sparse/0 --out runs/bird --scale camera-height=0.074 "
        "--field-minutes 10 --tsdf-resolution 192 --no-ground-prior"
    )
    config = build_config(args)
    assert config.poses_from == "../shared/data/bird_capture/sparse/0"
    assert (config.scale, config.up) == ("camera-height=0.074", AlignConfig.up)
    assert (config.field_steps, config.field_minutes) == (None, 10.0)  # minutes replace steps
    assert config.mesh == MeshConfig(resolution=192, ground_prior=False)


def test_a_readme_evaluate_command_gives_the_expected_campaign(tmp_path):
    from eval.cli import _campaign

    args = parse(
        f"driveenv evaluate expert random --scene {ROOT / 'assets/scenes/bird'} --episodes 3 "
        f"--lighting capture,dim --out {tmp_path / 'eval'} --workers 2"
    )
    config, options = _campaign(args)
    assert [a.name for a in config.agents] == ["expert", "random"]
    assert (config.conditions, config.seeds, config.workers) == (["capture", "dim"], [0, 1, 2], 2)
    assert (config.spawn, config.max_episode_steps) == (
        EnvConfig.spawn,
        EnvConfig.max_episode_steps,
    )


@pytest.mark.parametrize(
    "command",
    [
        "driveenv align runs/lund --scale camera_height=1.6",
        "driveenv build-scene walk.mp4 --out runs/walk --scale height=2",
        "driveenv build-scene walk.mp4 --out runs/walk --up sky",
        "driveenv train ppo --scene s --out o --spawn nowhere",
        "driveenv train-field d --out f --scene-mode open",
        "driveenv train ppo --scene s --out o --hp learning_rate",
    ],
)
def test_a_bad_flag_fails_while_parsing(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(command)
    assert exit_info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_config_validation_is_one_project_error(capsys):
    assert cli.main(["train", "ppo", "--scene", "s", "--out", "o", "--obs", "lidar"]) == 1
    assert capsys.readouterr().err == (
        "error: obs sensor='lidar': choose one of rgb, depth, state, scan\n"
    )


@dataclasses.dataclass
class Toy:
    path: str = option(help="where")
    size: int | None = option(None, "pixels")
    fast: bool = option(False, "go fast")
    checked: bool = option(True, "check it")
    fractions: tuple[float, ...] = option((0.5,), "when")
    mode: str = option("a", "which", choices=("a", "b"), flag="toy-mode")
    extra: dict = option(factory=dict, help="more", flag="set")


def test_config_fields_become_flags_and_come_back_typed():
    import argparse

    parser = argparse.ArgumentParser()
    add_config(parser, Toy, positional=("path",))
    args = parser.parse_args(
        ["p", "--size", "3", "--fast", "--no-checked", "--fractions", "0.1", "0.2"]
        + ["--toy-mode", "b", "--set", "k=1", "--set", "name=x"]
    )
    toy = make_config(Toy, args)
    assert toy == Toy("p", 3, True, False, (0.1, 0.2), "b", {"k": 1, "name": "x"})
    assert make_config(Toy, parser.parse_args(["q"])) == Toy("q")
    assert make_config(Toy, parser.parse_args(["q"])).extra == {}  # a fresh dict each parse


def test_a_field_without_a_command_line_form_is_refused():
    import argparse

    @dataclasses.dataclass
    class Rings:
        rings: tuple[tuple[float, float], ...] = ((1.0, 0.5),)

    with pytest.raises(TypeError, match="Rings.rings"):
        add_config(argparse.ArgumentParser(), Rings)


def test_top_level_help_imports_no_config_module():
    code = (
        "import sys; from driveenv import cli; cli.build_parser().format_help(); "
        "print(sorted(m for m in ('torch', 'trimesh', 'matplotlib', 'simulator.config') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stderr


def test_build_options_are_checked_before_the_first_stage(tmp_path, capsys):
    out = tmp_path / "scene"
    argv = ["build-scene", str(tmp_path / "walk.mp4"), "--out", str(out), "--tasks", "0"]
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == "error: --tasks 0: must be at least 1\n"
    assert not out.exists() and not (tmp_path / "scene.build").exists()
