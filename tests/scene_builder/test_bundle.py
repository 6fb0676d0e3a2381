"""Scene bundles: round trip, hashes, and one clear error for each kind of damage."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import trimesh

from driveenv.cli import main
from scene_builder.bundle import (
    DEFAULT_LIGHTING,
    SCHEMA_VERSION,
    Goal,
    Pose2D,
    load_scene,
    write_scene,
)
from scene_builder.drivable import DrivableMap
from scene_builder.errors import BundleError


def small_bundle(tmp_path, **overrides):
    grid = np.zeros((30, 40), bool)
    grid[5:25, 5:35] = True
    grid[12:16, 18:22] = False
    plate = trimesh.creation.box(extents=(0.4, 0.3, 0.02))
    plate.apply_translation((0.2, 0.15, -0.01))
    plate.visual.vertex_colors = np.tile([200, 150, 100, 255], (len(plate.vertices), 1))
    fake_field = tmp_path / "field_src"
    fake_field.mkdir(exist_ok=True)
    (fake_field / "field.json").write_text(json.dumps({"backend": "embedded"}))
    (fake_field / "checkpoint.pt").write_bytes(b"\x00" * 64)
    args = dict(
        name="tiny",
        collision_mesh=plate,
        visual_mesh=plate,
        drivable=DrivableMap(grid, [0.0, 0.0], 0.01),
        spawns=[Pose2D(0.1, 0.1, 0.5)],
        goals=[Goal(0.3, 0.2, 0.04)],
        routes=[np.array([[0.1, 0.1], [0.2, 0.1], [0.3, 0.2]])],
        world_from_source=np.diag([2.0, 2.0, 2.0, 1.0]),
        field_dir=fake_field,
    )
    args.update(overrides)
    return write_scene(tmp_path / "scene", **args)


def test_each_file_is_hashed_once_and_the_identity_is_scene_json(tmp_path, monkeypatch):
    """write_scene hashes what it writes and returns the bundle without hashing it all again;
    a load hashes every file once and records scene.json's own SHA-256 as the identity."""
    import hashlib

    import scene_builder.bundle

    hashed = []
    real = scene_builder.bundle.sha256_of
    monkeypatch.setattr(
        scene_builder.bundle, "sha256_of", lambda path: hashed.append(path.name) or real(path)
    )
    written = small_bundle(tmp_path)
    files = json.loads((written.root / "scene.json").read_text())["files"]
    assert sorted(hashed) == sorted(rel.rsplit("/", 1)[-1] for rel in files)
    hashed.clear()
    loaded = load_scene(written.root)
    assert len(hashed) == len(files)
    digest = hashlib.sha256((written.root / "scene.json").read_bytes()).hexdigest()
    assert written.scene_sha256 == loaded.scene_sha256 == digest
    assert loaded.identity() == {"name": "tiny", "path": str(written.root), "sha256": digest}


def test_round_trip_keeps_every_field(tmp_path):
    written = small_bundle(tmp_path)
    scene = load_scene(tmp_path / "scene" / "scene.json")
    assert scene.name == "tiny"
    assert np.array_equal(scene.drivable.grid, written.drivable.grid)
    assert scene.drivable.grid[13, 19] == np.False_ and scene.drivable.grid[6, 6]
    assert np.allclose(scene.drivable.origin_xy, [0, 0]) and scene.drivable.resolution == 0.01
    assert scene.spawns == [Pose2D(0.1, 0.1, 0.5)] and scene.goals == [Goal(0.3, 0.2, 0.04)]
    assert np.allclose(scene.routes[0], [[0.1, 0.1], [0.2, 0.1], [0.3, 0.2]])
    assert set(scene.lighting) == set(DEFAULT_LIGHTING)
    assert np.allclose(scene.lighting["warm"].gain, DEFAULT_LIGHTING["warm"].gain)
    assert np.allclose(scene.world_from_source, np.diag([2.0, 2.0, 2.0, 1.0]))
    # default arena size: diagonal of the drivable cells' bounding box (0.3 m x 0.2 m)
    assert scene.arena_size == pytest.approx(np.hypot(0.3, 0.2))
    assert scene.field_dir.name == "field" and scene.field_backend == "embedded"
    assert scene.dataset_dir is None
    mesh = trimesh.load(scene.visual_mesh_path)
    assert np.allclose(mesh.visual.vertex_colors[0], [200, 150, 100, 255])
    assert trimesh.load(scene.collision_mesh_path).bounds[1, 2] == pytest.approx(0.0, abs=1e-9)
    meta = json.loads((scene.root / "scene.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION
    assert set(meta["files"]) == {
        "collision.obj",
        "visual.ply",
        "drivable.png",
        "field/field.json",
        "field/checkpoint.pt",
    }


def test_existing_output_is_not_overwritten_unless_asked(tmp_path):
    small_bundle(tmp_path)
    with pytest.raises(BundleError, match="already exists"):
        small_bundle(tmp_path)
    scene = small_bundle(tmp_path, name="again", overwrite=True)
    assert scene.name == "again"


def test_failed_write_leaves_no_bundle(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        small_bundle(tmp_path, visual_mesh=tmp_path / "missing.ply")
    assert not (tmp_path / "scene").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["field_src"]


def test_missing_file_is_named(tmp_path):
    scene = small_bundle(tmp_path)
    (scene.root / "field" / "checkpoint.pt").unlink()
    with pytest.raises(BundleError, match=r"scene\.json: missing file field/checkpoint\.pt"):
        load_scene(scene.root)


def test_corrupted_file_is_named(tmp_path):
    scene = small_bundle(tmp_path)
    with open(scene.collision_mesh_path, "a") as stream:
        stream.write("v 0 0 0\n")
    with pytest.raises(BundleError, match=r"collision\.obj is corrupted"):
        load_scene(scene.root)
    assert load_scene(scene.root, verify_hashes=False).name == "tiny"


def test_other_schema_version_is_refused(tmp_path):
    scene = small_bundle(tmp_path)
    meta_path = scene.root / "scene.json"
    meta = json.loads(meta_path.read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=f"schema_version {SCHEMA_VERSION + 1} is not supported"):
        load_scene(scene.root)


def test_each_bad_field_gets_its_own_message(tmp_path):
    scene = small_bundle(tmp_path)
    meta_path = scene.root / "scene.json"
    meta = json.loads(meta_path.read_text())
    del meta["name"]
    meta["spawns"] = [[0.1, 0.2]]
    meta["lighting"]["dim"]["gamma"] = -1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BundleError) as caught:
        load_scene(scene.root)
    assert "missing 'name'" in str(caught.value)
    meta["name"] = "tiny"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BundleError) as caught:
        load_scene(scene.root)
    message = str(caught.value)
    assert "'spawns' must be a finite Nx3 array" in message
    assert "'lighting.dim.gamma' must be a positive number" in message
    assert "\n" not in message


def _rewrite(scene, change) -> None:
    """Edit scene.json (and keep 'files' hashes honest, as an attacker would)."""
    from scene_builder.bundle import sha256_of

    meta_path = scene.root / "scene.json"
    meta = json.loads(meta_path.read_text())
    change(meta)
    for rel in list(meta["files"]):
        target = scene.root / rel
        if target.is_file():
            meta["files"][rel] = sha256_of(target)
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m.update(collision_mesh="../../../../../../etc/passwd"),
            "'collision_mesh' must be a relative path inside the bundle",
        ),
        (
            lambda m: m["files"].update({"/etc/passwd": "0" * 64}),
            "'files['/etc/passwd']' must be a relative path inside the bundle",
        ),
        (lambda m: m["field"].update(dir="/tmp"), "'field.dir' must be a relative path inside"),
        (lambda m: m.update(dataset="../elsewhere"), "'dataset' must be a relative path inside"),
    ],
)
def test_paths_that_leave_the_bundle_are_refused(tmp_path, change, message):
    scene = small_bundle(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    _rewrite(scene, change)
    with pytest.raises(BundleError, match=re.escape(message)) as caught:
        load_scene(scene.root)
    assert str(caught.value).startswith(str(scene.root / "scene.json"))
    assert "\n" not in str(caught.value)


def test_symlinks_out_unlisted_files_and_field_json_paths_are_refused(tmp_path):
    outside = tmp_path / "secret.obj"
    outside.write_text("v 0 0 0\n")
    scene = small_bundle(tmp_path)
    collision = scene.root / "collision.obj"
    collision.unlink()
    collision.symlink_to(outside)  # listed, hash updated, but its target is outside
    _rewrite(scene, lambda m: None)
    with pytest.raises(BundleError, match=r"'collision_mesh' must be a relative path inside"):
        load_scene(scene.root)

    (tmp_path / "b").mkdir()
    scene = small_bundle(tmp_path / "b")
    (scene.root / "field" / "extra.pt").write_bytes(b"\x00")  # a file the loader could open
    with pytest.raises(BundleError, match=r"field/extra\.pt is not listed in 'files'"):
        load_scene(scene.root)

    (tmp_path / "c").mkdir()
    scene = small_bundle(tmp_path / "c")
    field_json = scene.root / "field" / "field.json"
    field_json.write_text(json.dumps({"backend": "embedded", "checkpoint": "../../../x.pt"}))
    _rewrite(scene, lambda m: None)
    with pytest.raises(BundleError, match=r"field\.json 'checkpoint' must be a relative path"):
        load_scene(scene.root)


def test_the_shipped_bird_is_confined():
    from pathlib import Path

    bird = Path(__file__).resolve().parents[2] / "assets" / "scenes" / "bird"
    scene = load_scene(bird, verify_hashes=False)
    assert scene.field_dir.is_relative_to(scene.root) and scene.dataset_dir.is_relative_to(
        scene.root
    )


def test_not_a_bundle_and_bad_json(tmp_path):
    with pytest.raises(BundleError, match="no such file"):
        load_scene(tmp_path)
    (tmp_path / "scene.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_scene(tmp_path)


def test_field_of_a_scene_without_one_is_a_clear_error(tmp_path):
    scene = small_bundle(tmp_path, field_dir=None)
    assert scene.field_dir is None
    with pytest.raises(BundleError, match="no radiance field"):
        scene.load_field()


def test_scene_info_cli_reports_a_damaged_bundle_on_one_line(tmp_path, capsys):
    scene = small_bundle(tmp_path)
    (scene.root / "drivable.png").unlink()
    assert main(["scene-info", str(scene.root), "--no-preview"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing file drivable.png" in err and "\n" not in err
