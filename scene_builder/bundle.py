"""The scene bundle: one directory holding everything the simulator loads, validated on load.

Layout (paths relative to the bundle root)::

    scene.json        schema version, name, geometry, tasks, lighting, transforms, file hashes
    collision.obj     static triangle mesh, world frame (z up, metres, ground z = 0)
    visual.ply        the same surface with per-vertex colours baked from the field
    drivable.png      the drivable map, white = drivable; image row 0 is the grid's LAST row
                      (largest y), so the picture shows the map with +y up
    field/            the radiance field directory (``load_field``), absent for synthetic scenes
    dataset/          the posed dataset the scene came from (transforms.json + images), optional
    baked/            optional texture atlas for the baked camera (``scene_builder.texture_atlas``;
                      scene.json ``baked``), added by ``scene_builder.bake_scene``

``scene.json["files"]`` maps every other file in the bundle to its SHA-256, so a missing or
corrupted file is caught when the bundle is loaded rather than deep inside PyBullet or torch.
Bundles are written into a temporary sibling directory and renamed into place (atomic).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from common.atomic import atomic_path
from scene_builder.drivable import DrivableMap, Goal, Pose2D
from scene_builder.errors import BundleError
from scene_builder.lighting import PRESETS as DEFAULT_LIGHTING
from scene_builder.lighting import LightingPreset
from scene_builder.mesh_check import load_checked_mesh

SCHEMA_VERSION = 1
SCENE_FILE = "scene.json"
COLLISION_FILE = "collision.obj"
VISUAL_FILE = "visual.ply"
DRIVABLE_FILE = "drivable.png"
FIELD_DIR = "field"
DATASET_DIR = "dataset"
BAKED_DIR = "baked"

__all__ = [
    "SCHEMA_VERSION",
    "DEFAULT_LIGHTING",
    "Goal",
    "LightingPreset",
    "Pose2D",
    "SceneBundle",
    "as_scene",
    "load_scene",
    "write_scene",
]


@dataclass
class SceneBundle:
    """A loaded scene bundle (see the module docstring for the files behind each field)."""

    root: Path
    name: str
    collision_mesh_path: Path
    visual_mesh_path: Path
    field_dir: Path | None
    drivable: DrivableMap
    spawns: list[Pose2D]
    goals: list[Goal]
    routes: list[np.ndarray]
    lighting: dict[str, LightingPreset]
    arena_size: float
    world_from_source: np.ndarray
    dataset_dir: Path | None
    field_backend: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    scene_sha256: str = ""  # of scene.json as loaded: it holds the hashes of every other file
    baked_dir: Path | None = None  # the baked texture atlas's folder, when the scene has one

    def identity(self) -> dict[str, str]:
        """Name, path and scene.json SHA-256: what an evaluation records to check its scene."""
        return {"name": self.name, "path": str(self.root), "sha256": self.scene_sha256}

    def load_field(self):
        """The scene's radiance field (``scene_builder.fields.RadianceField``)."""
        if self.field_dir is None:
            raise BundleError(f"{self.root / SCENE_FILE}: this scene has no radiance field")
        from scene_builder.fields import load_field

        return load_field(self.field_dir)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_mesh(mesh_or_path: Any, target: Path) -> None:
    if isinstance(mesh_or_path, str | Path):
        source = Path(mesh_or_path)
        if not source.is_file():
            raise BundleError(f"{source}: mesh file does not exist")
        if source.suffix.lower() != target.suffix.lower():
            import trimesh

            trimesh.load(source, force="mesh", process=False).export(target)
        else:
            shutil.copyfile(source, target)
    else:
        mesh_or_path.export(target)


def _write_drivable(drivable: DrivableMap, target: Path) -> None:
    image = np.where(drivable.grid[::-1], 255, 0).astype(np.uint8)
    if not cv2.imwrite(str(target), image):
        raise BundleError(f"{target}: could not write the drivable map")


def write_scene(
    out_dir: str | Path,
    *,
    name: str,
    collision_mesh: Any,
    visual_mesh: Any,
    drivable: DrivableMap,
    spawns: list[Pose2D],
    goals: list[Goal],
    routes: list[np.ndarray],
    lighting: dict[str, LightingPreset] | None = None,
    world_from_source: np.ndarray | None = None,
    field_dir: str | Path | None = None,
    dataset_dir: str | Path | None = None,
    arena_size: float | None = None,
    extras: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> SceneBundle:
    """Write a bundle to ``out_dir`` atomically and return it loaded (hashed once, while written).

    ``collision_mesh``/``visual_mesh`` are ``trimesh.Trimesh`` objects or mesh file paths;
    ``field_dir`` and ``dataset_dir`` are copied into the bundle. ``arena_size`` defaults to the
    diagonal of the drivable cells' bounding box. An existing ``out_dir`` is replaced only with
    ``overwrite=True``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise BundleError(f"{out_dir}: already exists (pass overwrite=True / --overwrite)")
    lighting = dict(DEFAULT_LIGHTING if lighting is None else lighting)
    if "capture" not in lighting:
        raise BundleError(f"{out_dir}: lighting presets must include 'capture'")
    if arena_size is None:
        low, high = drivable.drivable_bounds()
        arena_size = float(np.linalg.norm(high - low))
    world_from_source = np.eye(4) if world_from_source is None else np.asarray(world_from_source)
    field_backend = None
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        _write_mesh(collision_mesh, tmp / COLLISION_FILE)
        _write_mesh(visual_mesh, tmp / VISUAL_FILE)
        _write_drivable(drivable, tmp / DRIVABLE_FILE)
        if field_dir is not None:
            shutil.copytree(field_dir, tmp / FIELD_DIR)
            field_backend = _field_backend(tmp / FIELD_DIR)
        if dataset_dir is not None:
            shutil.copytree(dataset_dir, tmp / DATASET_DIR)
        files = {
            p.relative_to(tmp).as_posix(): sha256_of(p)
            for p in sorted(tmp.rglob("*"))
            if p.is_file()
        }
        meta = {
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "collision_mesh": COLLISION_FILE,
            "visual_mesh": VISUAL_FILE,
            "drivable": {
                "image": DRIVABLE_FILE,
                "origin_xy": [float(v) for v in drivable.origin_xy],
                "resolution": drivable.resolution,
            },
            "field": None if field_dir is None else {"dir": FIELD_DIR, "backend": field_backend},
            "dataset": None if dataset_dir is None else DATASET_DIR,
            "spawns": [s.to_list() for s in spawns],
            "goals": [g.to_list() for g in goals],
            "routes": [np.asarray(r, dtype=float).reshape(-1, 2).tolist() for r in routes],
            "lighting": {key: preset.to_json() for key, preset in lighting.items()},
            "arena_size": float(arena_size),
            "world_from_source": world_from_source.tolist(),
            "extras": extras or {},
            "files": files,
        }
        (tmp / SCENE_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    # every file was hashed just above, inside the temporary directory renamed into place
    return load_scene(out_dir, verify_hashes=False)


def _field_backend(field_dir: Path) -> str | None:
    try:
        return json.loads((field_dir / "field.json").read_text()).get("backend")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


class _Checker:
    """Collects every problem with a scene.json so the error lists them all, one per item."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = path
        self.meta = meta
        self.problems: list[str] = []

    def get(self, key: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
        if key not in self.meta:
            if not optional:
                self.problems.append(f"missing '{key}'")
            return None
        value = self.meta[key]
        if value is None and optional:
            return None
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.problems.append(f"'{key}' must be {names}, got {type(value).__name__}")
            return None
        return value

    def array(self, key: str, value: Any, shape: tuple[int | None, ...]) -> np.ndarray | None:
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            array = None
        ok = (
            array is not None
            and array.ndim == len(shape)
            and all(s is None or s == a for s, a in zip(shape, array.shape, strict=True))
            and np.all(np.isfinite(array))
        )
        if not ok:
            dims = "x".join("N" if s is None else str(s) for s in shape)
            self.problems.append(f"'{key}' must be a finite {dims} array")
            return None
        return array

    def raise_if_any(self) -> None:
        if self.problems:
            raise BundleError(f"{self.path}: " + "; ".join(self.problems))


def as_scene(scene: str | Path | SceneBundle) -> SceneBundle:
    """``scene`` itself when it is already loaded, else ``load_scene(scene)``.

    Everything downstream (environments, campaigns, the report) takes either, so a process that
    already holds the bundle passes it on instead of reading and hashing the directory again.
    """
    return scene if isinstance(scene, SceneBundle) else load_scene(scene)


def load_scene(path: str | Path, verify_hashes: bool = True) -> SceneBundle:
    """Load and validate a bundle directory (or its scene.json).

    Raises ``BundleError`` naming scene.json and listing every problem: unreadable JSON, another
    schema version, missing or mistyped fields, files that are missing or whose SHA-256 differs.
    """
    path = Path(path)
    root = path.parent if path.name == SCENE_FILE else path
    scene_file = root / SCENE_FILE
    meta, digest = _read_meta(root, scene_file)
    check = _Checker(scene_file, meta)
    fields = _typed_fields(check)
    check.raise_if_any()
    _check_confined(check, root, fields)
    check.raise_if_any()
    _check_files(check, root, fields, verify_hashes)
    arrays = _checked_arrays(check, fields)
    lighting = _checked_lighting(check, fields["lighting"])
    field_meta = fields["field"]
    if field_meta is not None and not isinstance(field_meta.get("dir"), str):
        check.problems.append("'field.dir' must be a path inside the bundle")
    check.raise_if_any()
    image_path = root / fields["drivable"]["image"]
    image = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise BundleError(f"{image_path}: not a readable image")
    load_checked_mesh(root / fields["collision_mesh"])
    dataset = fields["dataset"]
    return SceneBundle(
        root=root.resolve(),
        name=fields["name"],
        collision_mesh_path=(root / fields["collision_mesh"]).resolve(),
        visual_mesh_path=(root / fields["visual_mesh"]).resolve(),
        field_dir=None if field_meta is None else (root / field_meta["dir"]).resolve(),
        drivable=DrivableMap(image[::-1] > 127, arrays["origin"], arrays["resolution"]),
        spawns=[Pose2D(*map(float, s)) for s in arrays["spawns"]],
        goals=[Goal(*map(float, g)) for g in arrays["goals"]],
        routes=arrays["routes"],
        lighting=lighting,
        arena_size=float(fields["arena_size"]),
        world_from_source=fields["world_from_source"],
        dataset_dir=None if dataset is None else (root / dataset).resolve(),
        field_backend=None if field_meta is None else field_meta.get("backend"),
        extras=fields["extras"] or {},
        scene_sha256=digest,
        baked_dir=None if fields["baked"] is None else (root / fields["baked"]).resolve(),
    )


def _read_meta(root: Path, scene_file: Path) -> tuple[dict[str, Any], str]:
    """scene.json's object and the SHA-256 of its bytes, after the schema version check."""
    if not scene_file.is_file():
        raise BundleError(f"{scene_file}: no such file (is {root} a scene bundle?)")
    raw = scene_file.read_bytes()
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{scene_file}: not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{scene_file}: must hold a JSON object")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"{scene_file}: schema_version {version!r} is not supported (this DriveEnv reads "
            f"version {SCHEMA_VERSION}; rebuild the scene with 'driveenv build-scene')"
        )
    return meta, hashlib.sha256(raw).hexdigest()


def _typed_fields(check: _Checker) -> dict[str, Any]:
    """Every top-level field of scene.json, type-checked (a problem is recorded per bad one)."""
    return {
        "name": check.get("name", str),
        "files": check.get("files", dict) or {},
        "collision_mesh": check.get("collision_mesh", str),
        "visual_mesh": check.get("visual_mesh", str),
        "drivable": check.get("drivable", dict) or {},
        "field": check.get("field", dict, optional=True),
        "dataset": check.get("dataset", str, optional=True),
        "baked": check.get("baked", str, optional=True),
        "spawns": check.get("spawns", list),
        "goals": check.get("goals", list),
        "routes": check.get("routes", list),
        "lighting": check.get("lighting", dict),
        "arena_size": check.get("arena_size", (int, float)),
        "world_from_source": check.array(
            "world_from_source", check.meta.get("world_from_source"), (4, 4)
        ),
        "extras": check.get("extras", dict, optional=True),
    }


def _check_confined(check: _Checker, root: Path, fields: dict[str, Any]) -> None:
    """Every path of scene.json, and the files field.json makes the field loader open, resolve
    (symlinks followed) inside the bundle; every file under the field and dataset folders is
    listed in 'files', so that nothing is read without its hash."""
    inside = root.resolve()
    field_meta = fields["field"] or {}
    named = {
        "collision_mesh": fields["collision_mesh"],
        "visual_mesh": fields["visual_mesh"],
        "drivable.image": fields["drivable"].get("image"),
        "field.dir": field_meta.get("dir"),
        "dataset": fields["dataset"],
        "baked": fields["baked"],
        **{f"files[{rel!r}]": rel for rel in fields["files"]},
    }
    for key, rel in named.items():
        if rel is not None and not _resolves_inside(root, rel, inside):
            check.problems.append(f"'{key}' must be a relative path inside the bundle, got {rel!r}")
    if check.problems:
        return
    listed = {(root / rel).resolve() for rel in fields["files"]}
    for folder in (field_meta.get("dir"), fields["dataset"], fields["baked"]):
        if isinstance(folder, str) and (root / folder).is_dir():
            for file in sorted((root / folder).rglob("*")):
                if file.is_file() and file.resolve() not in listed:
                    rel = file.relative_to(root).as_posix()
                    check.problems.append(f"{rel} is not listed in 'files' (no hash to check)")
    if isinstance(field_meta.get("dir"), str):
        _check_field_paths(check, root / field_meta["dir"], inside)


def _check_field_paths(check: _Checker, field_dir: Path, inside: Path) -> None:
    """field.json's checkpoint and (nerfstudio) config: the files its loader opens."""
    meta_path = field_dir / "field.json"
    if not meta_path.is_file():
        return  # the field loader reports a field without field.json
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        check.problems.append(f"{meta_path.name} of the field is not valid JSON")
        return
    for key in ("checkpoint", "config"):
        value = meta.get(key) if isinstance(meta, dict) else None
        if isinstance(value, str) and not _resolves_inside(field_dir, value, inside):
            check.problems.append(
                f"field.json '{key}' must be a relative path inside the bundle, got {value!r}"
            )


def _resolves_inside(base: Path, rel: Any, inside: Path) -> bool:
    """``rel`` is a relative path string whose target (symlinks followed) lies within ``inside``."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute():
        return False
    try:
        (base / rel).resolve().relative_to(inside)
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _check_files(check: _Checker, root: Path, fields: dict[str, Any], verify: bool) -> None:
    """Every listed file exists (and, with ``verify``, has its SHA-256); the meshes and the map
    are listed."""
    files = fields["files"]
    for rel in [fields["collision_mesh"], fields["visual_mesh"], fields["drivable"].get("image")]:
        if rel not in files:
            check.problems.append(f"'{rel}' is not listed in 'files'")
    for rel, expected in files.items():
        file = root / rel
        if not file.is_file():
            check.problems.append(f"missing file {rel}")
        elif verify and sha256_of(file) != expected:
            check.problems.append(f"file {rel} is corrupted (SHA-256 differs from scene.json)")


def _checked_arrays(check: _Checker, fields: dict[str, Any]) -> dict[str, Any]:
    """Spawns, goals, routes and the drivable map's origin and resolution as numbers."""
    spawns, goals, drivable = fields["spawns"], fields["goals"], fields["drivable"]
    resolution = drivable.get("resolution")
    if not isinstance(resolution, int | float) or resolution <= 0:
        check.problems.append("'drivable.resolution' must be a positive number")
    return {
        "spawns": check.array("spawns", spawns, (None, 3)) if spawns else np.zeros((0, 3)),
        "goals": check.array("goals", goals, (None, 3)) if goals else np.zeros((0, 3)),
        "routes": [
            check.array(f"routes[{i}]", r, (None, 2)) for i, r in enumerate(fields["routes"])
        ],
        "origin": check.array("drivable.origin_xy", drivable.get("origin_xy"), (2,)),
        "resolution": float(resolution) if isinstance(resolution, int | float) else 0.0,
    }


def _checked_lighting(check: _Checker, lighting_meta: dict[str, Any]) -> dict[str, LightingPreset]:
    lighting = {}
    for key, preset in lighting_meta.items():
        gain = check.array(f"lighting.{key}.gain", (preset or {}).get("gain"), (3,))
        gamma = (preset or {}).get("gamma")
        if not isinstance(gamma, int | float) or gamma <= 0:
            check.problems.append(f"'lighting.{key}.gamma' must be a positive number")
        elif gain is not None:
            lighting[key] = LightingPreset(key, gain, float(gamma))
    if "capture" not in lighting_meta:
        check.problems.append("'lighting' must include the 'capture' preset")
    return lighting
