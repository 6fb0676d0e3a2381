"""Ctrl-C during ``driveenv train-field``: no empty --out left, and the hint's command resumes."""

from __future__ import annotations

import shlex

import scene_builder.train as train_module
from driveenv.cli import main
from scene_builder.fields import load_field
from tests.scene_builder.test_field_train import bird_dataset  # noqa: F401 - a fixture

SMALL = ["--field-downscale", "1", "--batch-rays", "256", "--field-resolution", "24"]


def _interrupt_at(monkeypatch, step: int) -> None:
    original = train_module.Trainer.train_step

    def train_step(self):
        if self.step == step:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(train_module.Trainer, "train_step", train_step)


def test_interrupted_while_loading_frames_leaves_nothing(
    bird_dataset,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,
):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "load_images", interrupted)
    out = tmp_path / "field"
    assert main(["train-field", str(bird_dataset), "--out", str(out), *SMALL]) == 130
    assert "start over" in capsys.readouterr().err
    assert not out.exists()
    monkeypatch.undo()
    _interrupt_at(monkeypatch, 2)  # before the first checkpoint: nothing to resume either
    assert main(["train-field", str(bird_dataset), "--out", str(out), *SMALL]) == 130
    assert "start over" in capsys.readouterr().err and not out.exists()


def test_the_hint_names_the_command_that_resumes(bird_dataset, tmp_path, monkeypatch, capsys):  # noqa: F811
    out = tmp_path / "my field"
    command = ["train-field", str(bird_dataset), "--out", str(out), "--field-steps", "6"]
    command += [*SMALL, "--checkpoint-seconds", "0"]
    _interrupt_at(monkeypatch, 3)
    assert main(command) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("interrupted: resume with: driveenv")
    assert main(command) == 1  # the same command refuses: a field is already there
    assert "--resume" in capsys.readouterr().err
    monkeypatch.undo()
    hinted = shlex.split(err.split("resume with: ", 1)[1])
    assert hinted[:2] == ["driveenv", "train-field"] and hinted[-1] == "--resume"
    assert main(hinted[1:]) == 0
    assert "step 6/6, complete" in capsys.readouterr().out
    assert load_field(out).backend_name == "embedded"
