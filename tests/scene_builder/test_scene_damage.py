"""A bundle whose collision.obj is damaged (with its hash updated) is one line, never a crash,
and ``driveenv scene-info`` is a re-runnable inspection that never writes into the bundle."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from driveenv.cli import main
from scene_builder.bundle import load_scene, sha256_of
from scene_builder.errors import BundleError
from scene_builder.synthetic import make_synthetic_scene

DAMAGE = {
    "garbage": b"\x00\x01 binary garbage \xff" * 10,
    "face index past the vertices": b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 999999\n",
    "too few vertices": b"v 0 0 0\nv 1 0 0\nf 1 2 3\n",
    "empty": b"",
    "NaN vertex": b"v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return make_synthetic_scene(tmp_path_factory.mktemp("damage") / "scene", seed=0)


def _damaged(pristine, tmp_path, content: bytes, name: str = "collision.obj"):
    import shutil

    root = tmp_path / "scene"
    shutil.copytree(pristine, root)
    mesh = root / name
    mesh.write_bytes(content)
    meta = json.loads((root / "scene.json").read_text())
    meta["files"][name] = sha256_of(mesh)  # as if the author re-hashed it
    (root / "scene.json").write_text(json.dumps(meta))
    return root


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_collision_mesh_is_one_line(pristine, tmp_path, kind, capsys):
    root = _damaged(pristine, tmp_path, DAMAGE[kind])
    with pytest.raises(BundleError, match="collision.obj: "):
        load_scene(root)
    assert main(["scene-info", str(root), "--no-preview"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "collision.obj" in err


def test_a_damaged_visual_mesh_is_one_line_in_scene_info(pristine, tmp_path, capsys):
    header = b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1\n"
    root = _damaged(pristine, tmp_path, header, name="visual.ply")
    assert main(["scene-info", str(root), "--preview", str(tmp_path / "p.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "visual.ply: not a readable triangle mesh" in err
    assert not (tmp_path / "p.png").exists()


def test_the_simulator_refuses_it_instead_of_crashing(pristine, tmp_path):
    """PyBullet's loader dies with a segmentation fault on this file: run it in a child."""
    root = _damaged(pristine, tmp_path, DAMAGE["face index past the vertices"])
    script = (
        "import sys; from driveenv.cli import main; "
        f"sys.exit(main(['rollout', {str(root)!r}, '--episodes', '1', '--max-episode-steps', "
        f"'3', '--out', {str(tmp_path / 'ro.mp4')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-300:]
    assert "collision.obj" in done.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "ro.mp4").exists()


def test_scene_info_runs_twice_and_writes_only_its_preview(pristine, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in pristine.parent.iterdir())
    bundle = {p: p.stat().st_mtime_ns for p in pristine.rglob("*")}
    for _ in range(2):
        assert main(["scene-info", str(pristine), "--preview-size", "24"]) == 0
        assert f"preview: {pristine.name}_preview.png" in capsys.readouterr().out
    assert (tmp_path / f"{pristine.name}_preview.png").stat().st_size > 0
    assert sorted(p.name for p in pristine.parent.iterdir()) == before  # nothing beside it
    assert {p: p.stat().st_mtime_ns for p in pristine.rglob("*")} == bundle  # nor inside
