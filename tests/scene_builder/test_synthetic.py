"""The synthetic scene: a table-top arena the simulator and agent tests can rely on."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from common.open3d_compat import import_open3d
from scene_builder.bundle import load_scene
from scene_builder.synthetic import SyntheticConfig, make_synthetic_scene


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return load_scene(make_synthetic_scene(tmp_path_factory.mktemp("syn") / "scene", seed=0))


def test_meshes_are_a_plate_at_z0_with_boxes(synthetic):
    collision = trimesh.load(synthetic.collision_mesh_path, force="mesh")
    visual = trimesh.load(synthetic.visual_mesh_path)
    config = SyntheticConfig()
    assert np.allclose(collision.bounds[:, :2], [[-0.6, -0.45], [0.6, 0.45]])
    assert collision.bounds[1, 2] <= config.box_height_range[1] + 1e-9
    assert len(visual.faces) == len(collision.faces)
    # the ground is textured: the plate top's colours vary
    top = np.abs(visual.vertices[:, 2]) < 1e-9
    assert visual.visual.vertex_colors[top, :3].std(axis=0).min() > 5
    # rays straight down near the plate's corners hit its top at z = 0
    o3d = import_open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(collision.vertices.astype(np.float32)),
        o3d.core.Tensor(collision.faces.astype(np.uint32)),
    )
    rays = np.array([[x, y, 1.0, 0, 0, -1] for x in (-0.55, 0.55) for y in (-0.4, 0.4)])
    distance = scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))["t_hit"].numpy()
    assert np.allclose(distance, 1.0, atol=1e-5)


def test_map_blocks_boxes_and_ends_at_the_plate_edge(synthetic):
    drivable = synthetic.drivable
    collision = trimesh.load(synthetic.collision_mesh_path, force="mesh")
    above = collision.vertices[:, 2] > 0.01  # the top corners of the boxes
    box_corners = collision.vertices[above][:, :2]
    centre_of_boxes = box_corners.reshape(-1, 4, 2).mean(axis=1)
    assert len(centre_of_boxes) == SyntheticConfig().box_count
    assert not drivable.is_drivable(centre_of_boxes).any()
    assert not drivable.is_drivable(box_corners).any()
    assert drivable.is_drivable(np.array([[0.58, 0.0], [0.0, -0.43]])).sum() >= 1
    assert not drivable.is_drivable(np.array([[0.62, 0.0], [0.0, -0.47], [0.7, 0.5]])).any()
    assert synthetic.arena_size == pytest.approx(1.5)


def test_tasks_lie_on_free_cells_and_routes_are_drivable(synthetic):
    assert len(synthetic.spawns) == len(synthetic.goals) == len(synthetic.routes) == 8
    for spawn, goal, route in zip(synthetic.spawns, synthetic.goals, synthetic.routes, strict=True):
        assert synthetic.drivable.is_drivable(
            np.array([[spawn.x, spawn.y], [goal.x, goal.y]])
        ).all()
        assert np.allclose(route[0], [spawn.x, spawn.y]) and np.allclose(
            route[-1], [goal.x, goal.y]
        )
        dense = np.concatenate(
            [np.linspace(a, b, 10) for a, b in zip(route[:-1], route[1:], strict=True)]
        )
        assert synthetic.drivable.is_drivable(dense).all()
    assert set(synthetic.lighting) >= {"capture", "bright", "dim", "warm", "night"}
    assert synthetic.field_dir is None


def test_same_seed_same_scene_other_seed_other_scene(tmp_path):
    a = load_scene(make_synthetic_scene(tmp_path / "a", seed=5))
    b = load_scene(make_synthetic_scene(tmp_path / "b", seed=5))
    c = load_scene(make_synthetic_scene(tmp_path / "c", seed=6))
    assert a.spawns == b.spawns and np.array_equal(a.drivable.grid, b.drivable.grid)
    assert a.collision_mesh_path.read_bytes() == b.collision_mesh_path.read_bytes()
    assert a.spawns != c.spawns and not np.array_equal(a.drivable.grid, c.drivable.grid)


def test_scene_info_prints_a_summary_and_writes_a_preview(synthetic, tmp_path, capsys):
    import cv2

    from driveenv.cli import main
    from scene_builder.preview import render_preset_views

    target = tmp_path / "preview.png"
    assert (
        main(["scene-info", str(synthetic.root), "--preview", str(target), "--preview-size", "48"])
        == 0
    )
    out = capsys.readouterr().out
    assert "8 spawns, 8 goals, 8 routes" in out and "field           none" in out
    image = cv2.imread(str(target))
    assert image is not None and image.shape[1] > 3 * image.shape[0]  # map + 5 views in a row
    target.write_bytes(b"stale")  # a second run replaces its own output
    assert main(["scene-info", str(synthetic.root), "--preview", str(target)]) == 0
    assert cv2.imread(str(target)) is not None
    inside = synthetic.root / "preview.png"
    assert main(["scene-info", str(synthetic.root), "--preview", str(inside)]) == 1
    assert "inside the bundle" in capsys.readouterr().err and not inside.exists()
    views = render_preset_views(synthetic, 32, "mesh")
    assert views["night"].mean() < views["capture"].mean() < views["bright"].mean()
    assert views["warm"][..., 0].mean() > views["warm"][..., 2].mean()


def test_synthetic_scene_command_writes_a_loadable_bundle_once(tmp_path, capsys):
    from driveenv.cli import main
    from scene_builder.bundle import load_scene

    out = tmp_path / "synthetic"
    assert main(["synthetic-scene", "--out", str(out), "--seed", "3"]) == 0
    scene = load_scene(out)
    assert scene.field_dir is None and len(scene.spawns) == len(scene.goals) > 0
    assert main(["synthetic-scene", "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
