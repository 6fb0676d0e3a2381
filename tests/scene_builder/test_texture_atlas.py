"""The baked texture atlas: lookups, the projective bake on the synthetic scene, the bundle entry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scene_builder.bake_scene import remove_baked_texture, write_baked_texture
from scene_builder.bundle import load_scene
from scene_builder.camera import camera_ray_batch, fov_intrinsics, local_directions, look_at
from scene_builder.errors import BundleError
from scene_builder.raycast import MeshCaster
from scene_builder.texture_atlas import (
    AtlasLookup,
    TextureAtlas,
    atlas_from_vertex_colours,
    visual_mesh_atlas,
)
from scene_builder.texture_bake import BakeConfig, View, bake_atlas, fit_gains

SIZE = (48, 36)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from scene_builder.synthetic import make_synthetic_scene

    return load_scene(make_synthetic_scene(tmp_path_factory.mktemp("baked") / "s", seed=0))


def test_lookup_reproduces_barycentric_colours_without_bleeding():
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(60, 3))
    faces = rng.integers(0, 60, size=(101, 3))
    colours = rng.uniform(0.25, 0.75, size=(60, 3))  # extended to the gutters within [0, 1]
    atlas = atlas_from_vertex_colours(vertices, faces, colours, cell=6)
    face = rng.integers(0, len(faces), 5000)
    uv = rng.uniform(size=(5000, 2))
    uv = np.where(uv.sum(1, keepdims=True) > 1, 1 - uv, uv)  # inside the triangle
    got = AtlasLookup(atlas).colours(face, uv.astype(np.float32))
    corners = colours[faces[face]]
    want = corners[:, 0] + uv[:, :1] * (corners[:, 1] - corners[:, 0])
    want += uv[:, 1:] * (corners[:, 2] - corners[:, 0])
    # a texel of a neighbouring triangle (random colours) would be off by ~0.3
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert AtlasLookup(atlas).colours(face[:0], uv[:0].astype(np.float32)).shape == (0, 3)


def _orbit_views(scene, count: int, radius: float, height: float, phase: float = 0.0):
    intrinsics = fov_intrinsics(*SIZE, 70.0)
    caster = MeshCaster.from_file(scene.visual_mesh_path, colours=True)
    directions = local_directions(intrinsics, *SIZE)
    views = []
    for angle in np.linspace(0, 2 * np.pi, count, endpoint=False) + phase:
        pose = look_at((radius * np.cos(angle), radius * np.sin(angle), height), (0, 0, 0))
        hits = caster.cast_cameras(pose[None], directions)
        rgb = caster.colours(hits, (0.3, 0.3, 0.3)).reshape(SIZE[1], SIZE[0], 3)
        views.append(View(rgb.astype(np.float32), pose, intrinsics))
    return views


def test_projective_bake_reproduces_the_synthetic_scenes_texture(synthetic):
    """Baked from 24 renderings of the known (vertex-coloured) scene, the atlas shows that scene
    at 6 new poses, and a per-view exposure change in the inputs is undone."""
    views = _orbit_views(synthetic, 24, radius=0.9, height=0.6)
    for k, view in enumerate(views):  # every input frame exposed differently
        view.rgb = view.rgb * (0.8 + 0.4 * (k % 3) / 2)
    mesh = visual_mesh_atlas(synthetic.visual_mesh_path)
    atlas, gains = bake_atlas(
        mesh.vertices, mesh.faces, views, (0, 0, 0.3), 3.0, BakeConfig(cell=8, dome_height=32)
    )
    assert gains.max() / gains.min() > 1.3  # the exposure differences were found
    caster = MeshCaster(atlas.vertices, atlas.faces)
    lookup = AtlasLookup(atlas)
    errors, dome_errors = [], []
    for view in _orbit_views(synthetic, 6, radius=0.8, height=0.5, phase=0.3):
        directions = local_directions(view.intrinsics, *SIZE)
        rays = camera_ray_batch(view.camera_to_world[None], directions).reshape(-1, 6)
        hits = caster.cast(rays)
        ids = hits.primitive_ids.reshape(-1)
        on_scene = hits.hit & (ids < atlas.scene_faces)
        rgb = lookup.colours(np.where(hits.hit, ids, 0), hits.primitive_uvs.reshape(-1, 2))
        truth = view.rgb.reshape(-1, 3)
        errors.append(np.abs(rgb[on_scene] - truth[on_scene]))
        # the baked camera meets the dome in closed form: the texels its facets show
        dome = rays[hits.hit & ~on_scene]
        dome_errors.append(
            np.abs(lookup.dome_colours(dome[:, :3], dome[:, 3:]) - rgb[hits.hit & ~on_scene])
        )
    assert np.median(np.concatenate(dome_errors)) < 0.02
    error = np.concatenate(errors)
    # the gains' geometric mean is 1, so the atlas is lit like the inputs' mean exposure
    # (0.986 of the truth here); edges of boxes seen at a slant blur a little
    assert np.median(error) < 0.03 and np.mean(error) < 0.05


def test_fit_gains_recovers_per_view_exposure():
    rng = np.random.default_rng(1)
    truth = rng.uniform(0.2, 0.8, size=(500, 3))
    gains = rng.uniform(0.7, 1.4, size=(6, 3))
    weights = (rng.uniform(size=(6, 500)) > 0.3).astype(np.float32)
    fitted = fit_gains(truth[None] * gains[:, None], weights, iterations=20)
    expected = gains / np.exp(np.log(gains).mean(0))
    np.testing.assert_allclose(fitted, expected, rtol=2e-3)


def test_baked_texture_round_trips_through_the_bundle(synthetic, tmp_path):
    import shutil

    root = tmp_path / "scene"
    shutil.copytree(synthetic.root, root)
    atlas = visual_mesh_atlas(root / "visual.ply")
    scene = write_baked_texture(root, atlas)
    meta = json.loads((root / "scene.json").read_text())
    assert meta["baked"] == "baked"
    assert {"baked/mesh.npz", "baked/atlas.png"} <= set(meta["files"])
    loaded = load_scene(root)  # hashes verified
    assert loaded.baked_dir == scene.baked_dir == (root / "baked").resolve()
    again = TextureAtlas.load(loaded.baked_dir)
    np.testing.assert_array_equal(again.faces, atlas.faces)
    np.testing.assert_allclose(again.face_uvs, atlas.face_uvs)
    np.testing.assert_allclose(again.image, atlas.image, atol=0.5 / 255 + 1e-6)  # 8-bit PNG

    (root / "baked" / "atlas.png").write_bytes(b"not a png")
    with pytest.raises(BundleError, match="baked/atlas.png is corrupted"):
        load_scene(root)
    assert remove_baked_texture(root).baked_dir is None
    assert load_scene(root).baked_dir is None  # a bundle without a texture still loads


def test_malformed_baked_mesh_is_a_one_line_bundle_error(tmp_path):
    atlas = atlas_from_vertex_colours(np.eye(3), [[0, 1, 2]], np.eye(3))
    atlas.face_uvs = atlas.face_uvs + 1000.0
    atlas.save(tmp_path)
    with pytest.raises(BundleError, match="mesh.npz: face_uvs fall outside"):
        TextureAtlas.load(tmp_path)
