"""After Ctrl-C, ``driveenv`` says what to run: the same command for the commands that resume,
a fresh start for those that write their output at the end, train-field its --resume command."""

from __future__ import annotations

import pytest

from driveenv.cli import main


def _interrupted(*args, **kwargs):
    raise KeyboardInterrupt


def test_a_command_that_writes_at_the_end_says_start_over(tmp_path, monkeypatch, capsys):
    import scene_builder.synthetic

    monkeypatch.setattr(scene_builder.synthetic, "make_synthetic_scene", _interrupted)
    assert main(["synthetic-scene", "--out", str(tmp_path / "s")]) == 130
    assert "start over" in capsys.readouterr().err
    assert main(["synthetic-scene", "--out", str(tmp_path / "s"), "--seed", "-1"]) == 1
    assert capsys.readouterr().err.strip() == "error: --seed -1: must be 0 or more"


@pytest.mark.parametrize("overwrite", [False, True])
def test_evaluate_says_how_to_resume(tmp_path, monkeypatch, capsys, overwrite):
    import eval.rollouts
    from scene_builder.synthetic import make_synthetic_scene

    scene = make_synthetic_scene(tmp_path / "scene", seed=0)
    monkeypatch.setattr(eval.rollouts, "run_campaign", _interrupted)
    out = tmp_path / "eval"
    args = ["evaluate", "expert", "--scene", str(scene), "--out", str(out)]
    assert main(args + ["--overwrite"] * overwrite) == 130
    err = capsys.readouterr().err.strip()
    assert "run the same command again" in err and ("without --overwrite" in err) == overwrite
    assert not out.exists()


def test_nerfstudio_hint_names_its_backend(tmp_path, monkeypatch, capsys):
    pytest.importorskip("scene_builder.fields.nerfstudio_backend")
    import scene_builder.fields.nerfstudio_backend as backend

    monkeypatch.setattr(backend, "train_nerfacto", _interrupted)
    out = str(tmp_path / "f")
    assert main(["train-field", str(tmp_path), "--out", out, "--backend", "nerfstudio"]) == 130
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"--out {out} --backend nerfstudio --resume")


def test_a_failed_demo_leaves_no_folder(tmp_path, capsys):
    from scene_builder.synthetic import make_synthetic_scene

    scene = make_synthetic_scene(tmp_path / "scene", seed=0)
    (scene / "drivable.png").unlink()
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--scene", str(scene), "--out", str(out)]) == 1
    assert "drivable.png" in capsys.readouterr().err and not out.exists()
