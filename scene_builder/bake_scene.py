"""Bake a scene bundle's texture atlas from its posed dataset and add it to the bundle.

``bake_scene_texture`` reads the bundle's visual mesh and the training frames of its dataset
(the field's hold-out rule decides which frames are held out, so they stay unseen), fills the
atlas by projective texturing (``scene_builder.texture_bake``) and writes ``baked/`` into the
bundle with its hashes in ``scene.json`` (``baked``). The folder is written atomically first and
scene.json second, so an interrupted bake leaves the bundle as it was (an unlisted ``baked/``
is replaced by the next bake and ignored until scene.json names it).

    python -m scene_builder.bake_scene assets/scenes/bird
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from common.atomic import atomic_path, write_text_atomic
from scene_builder.bundle import BAKED_DIR, SCENE_FILE, SceneBundle, as_scene, load_scene, sha256_of
from scene_builder.datasets import PosedDataset, load_dataset, split_indices
from scene_builder.errors import BundleError, FieldError
from scene_builder.texture_atlas import TextureAtlas
from scene_builder.texture_bake import BakeConfig, View, bake_atlas


def training_views(dataset: PosedDataset, holdout_every: int) -> list[View]:
    """The frames a field with this hold-out rule trained on, as undistorted float RGB views."""
    train, _ = split_indices(len(dataset), holdout_every) if holdout_every > 0 else (None, None)
    indices = range(len(dataset)) if train is None else train
    views = []
    for index in indices:
        frame = dataset.frames[int(index)]
        camera = frame.camera
        image = cv2.imread(str(frame.image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise BundleError(f"{frame.image_path}: cannot read this image")
        if camera.has_distortion:
            coefficients = np.array([camera.k1, camera.k2, camera.p1, camera.p2])
            image = cv2.undistort(image, camera.K, coefficients)
        if image.shape[:2] != (camera.height, camera.width):
            image = cv2.resize(image, (camera.width, camera.height), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        intrinsics = np.array([camera.fx, camera.fy, camera.cx, camera.cy])
        views.append(View(rgb, np.asarray(frame.camera_to_world, np.float64), intrinsics))
    return views


def _holdout_rule(scene: SceneBundle) -> int:
    if scene.field_dir is None:
        return 0
    from scene_builder.fields.base import read_field_meta

    try:
        return int(read_field_meta(scene.field_dir).get("holdout_every") or 0)
    except FieldError:
        return 0


def bake_texture(scene: SceneBundle, config: BakeConfig | None = None) -> TextureAtlas:
    """The scene's texture atlas baked from its dataset's training frames (not yet written)."""
    import trimesh

    config = config or BakeConfig()
    if scene.dataset_dir is None:
        raise BundleError(f"{scene.root / SCENE_FILE}: no posed dataset to bake a texture from")
    views = training_views(load_dataset(scene.dataset_dir), _holdout_rule(scene))
    mesh = trimesh.load(scene.visual_mesh_path, force="mesh", process=False)
    positions = np.stack([view.camera_to_world[:3, 3] for view in views])
    centre = positions.mean(0)
    radius = config.dome_radius_factor * float(np.linalg.norm(positions - centre, axis=1).mean())
    atlas, _ = bake_atlas(mesh.vertices, mesh.faces, views, centre, max(radius, 1e-3), config)
    return atlas


def add_baked_texture(scene, config: BakeConfig | None = None) -> SceneBundle:
    """Bake the texture of the bundle ``scene`` (path or bundle) into it; returns it reloaded."""
    scene = as_scene(scene)
    return write_baked_texture(scene, bake_texture(scene, config))


def write_baked_texture(scene, atlas: TextureAtlas) -> SceneBundle:
    """Write ``atlas`` into the bundle ``scene`` (replacing any baked texture); returns it
    reloaded."""
    scene = as_scene(scene)
    folder = scene.root / BAKED_DIR
    with atomic_path(folder) as tmp:
        atlas.save(tmp)
    scene_file = scene.root / SCENE_FILE
    meta = json.loads(scene_file.read_text())
    files = {rel: digest for rel, digest in meta["files"].items() if not rel.startswith(BAKED_DIR)}
    for path in sorted(folder.iterdir()):
        files[f"{BAKED_DIR}/{path.name}"] = sha256_of(path)
    meta["baked"], meta["files"] = BAKED_DIR, dict(sorted(files.items()))
    write_text_atomic(scene_file, json.dumps(meta, indent=1) + "\n")
    return load_scene(scene.root, verify_hashes=False)


def remove_baked_texture(scene) -> SceneBundle:
    """The bundle (path or bundle) without its baked texture (scene.json first, then the
    folder); works on a bundle whose texture files are damaged."""
    root = scene.root if isinstance(scene, SceneBundle) else Path(scene)
    scene_file = root / SCENE_FILE
    meta = json.loads(scene_file.read_text())
    meta.pop("baked", None)
    meta["files"] = {k: v for k, v in meta["files"].items() if not k.startswith(f"{BAKED_DIR}/")}
    write_text_atomic(scene_file, json.dumps(meta, indent=1) + "\n")
    shutil.rmtree(root / BAKED_DIR, ignore_errors=True)
    return load_scene(root, verify_hashes=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bake a scene bundle's texture atlas in place.")
    parser.add_argument("scene", type=Path)
    parser.add_argument("--cell", type=int, default=BakeConfig.cell)
    parser.add_argument("--sharpness", type=float, default=BakeConfig.sharpness)
    args = parser.parse_args(argv)
    config = replace(BakeConfig(), cell=args.cell, sharpness=args.sharpness)
    scene = add_baked_texture(load_scene(args.scene), config)
    sizes = sum(p.stat().st_size for p in scene.baked_dir.iterdir())
    print(f"{scene.root}: baked texture in {scene.baked_dir.name}/ ({sizes / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
