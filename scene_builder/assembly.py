"""Bundle assembly: a radiance field and its posed dataset -> geometry -> a scene bundle.

``geometry_from_field`` and ``geometry_from_points`` run the mesher (``scene_builder.mesh``) on
a trained field or on a dataset's sparse points, with a progress bar; ``write_bundle`` samples the
driving tasks on the geometry's drivable map, sizes the vehicle from the drivable area, copies the
field and the dataset (its frames at the field's training size) and writes the bundle with
``bundle.write_scene``, then bakes the texture of the baked camera (``bake_scene``) when
there is a dataset. ``driveenv build-scene`` runs these as its last two stages; ``driveenv
bundle`` runs them on a field trained separately.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scene_builder.errors import BundleError

if TYPE_CHECKING:
    from scene_builder.mesh import MeshConfig

STAGE_FILE = "stage.json"  # a build stage's marker (``build``), never copied into a bundle


def geometry_from_field(field_dir: str | Path, dataset_dir: str | Path | None, config: MeshConfig):
    """Load a field and its posed dataset (default: the one recorded in field.json) and run
    ``mesh.extract_geometry`` with a progress bar over the rendered views."""
    import numpy as np

    from common.progress import progress_bar
    from scene_builder.datasets import load_dataset
    from scene_builder.fields import load_field
    from scene_builder.geometry.ground import RoadPrior
    from scene_builder.mesh import extract_geometry

    render_field = load_field(field_dir)
    if dataset_dir is None:
        named = render_field.meta.get("dataset")
        if not named:
            raise BundleError(f"{field_dir}: field.json names no dataset; pass --dataset")
        dataset_dir = Path(field_dir) / named  # a relative path is relative to the field

    dataset = load_dataset(dataset_dir)
    intrinsics = np.array(
        [[f.camera.fx, f.camera.fy, f.camera.cx, f.camera.cy] for f in dataset.frames]
    )
    size = (dataset.camera.width, dataset.camera.height)
    with progress_bar() as bar:
        task = bar.add_task("rendering depth", total=None, status="")

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=f"rendering {what}")

        road = RoadPrior.from_dataset(dataset)
        geometry = extract_geometry(
            render_field, dataset.poses, intrinsics, size, config, progress, road=road
        )
    geometry.stats["dataset"] = str(dataset.root)
    if road is not None:
        geometry.stats["road"] = road.to_json()
    return geometry


def geometry_from_points(dataset_dir: str | Path, config: MeshConfig):
    """``mesh.points_geometry`` on a posed dataset's sparse points and images."""
    import numpy as np

    from common.progress import progress_bar
    from scene_builder.datasets import load_dataset, load_sparse_points
    from scene_builder.mesh import points_geometry

    dataset = load_dataset(dataset_dir)
    found = load_sparse_points(dataset)
    if found is None:
        raise BundleError(f"{dataset.root}: has no sparse points for --geometry points")
    intrinsics = np.array(
        [[f.camera.fx, f.camera.fy, f.camera.cx, f.camera.cy] for f in dataset.frames]
    )
    size = (dataset.camera.width, dataset.camera.height)
    with progress_bar() as bar:
        task = bar.add_task("baking colours", total=None, status="")

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=f"baking {what}")

        geometry = points_geometry(
            found[0],
            dataset.poses,
            intrinsics,
            [f.image_path for f in dataset.frames],
            size,
            config,
            progress,
        )
    geometry.stats["dataset"] = str(dataset.root)
    return geometry


def write_bundle(
    geometry,
    out: str | Path,
    field_dir: str | Path,
    dataset_dir: str | Path | None,
    name: str,
    tasks: int = 16,
    task_clearance: float | None = None,
    goal_radius: float | None = None,
    seed: int = 0,
    extras: dict[str, Any] | None = None,
    overwrite: bool = False,
):
    """Sample tasks on the geometry's drivable map and write the bundle (field and dataset copied).

    A road (geometry from a forward capture, ``stats["road"]``): tasks are sections of the
    recorded route and the extras hold the scene kind, the recorded route, the camera height and
    a car's size (``_road_tasks``). An arena: the recommended vehicle length
    (``extras["vehicle_length"]``) comes from the drivable area (``recommended_vehicle_length``);
    spawns and goals keep 0.6 of it (about the vehicle's bounding radius) from anything not
    drivable by default; the goal radius is 6% of the arena radius.
    """
    import tempfile

    from scene_builder.bake_scene import add_baked_texture
    from scene_builder.bundle import write_scene
    from scene_builder.datasets import load_dataset
    from scene_builder.train import STATE_FILE

    if geometry.stats.get("road") is not None:
        spawns, goals, routes, kind_extras = _road_tasks(geometry, tasks, seed, goal_radius)
    else:
        spawns, goals, routes, kind_extras = _arena_tasks(
            geometry, tasks, seed, task_clearance, goal_radius
        )
    dataset = load_dataset(dataset_dir) if dataset_dir is not None else None
    skip = shutil.ignore_patterns(STATE_FILE, STAGE_FILE)  # optimiser state: as large as the field
    parent = Path(out).expanduser().resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent) as scratch:
        field_copy = Path(scratch) / "field"
        shutil.copytree(field_dir, field_copy, ignore=skip)
        dataset_copy = None
        if dataset is not None:
            dataset_copy = Path(scratch) / "dataset"
            _copy_dataset_at_field_resolution(dataset, dataset_copy, field_copy)
        scene = write_scene(
            out,
            name=name,
            collision_mesh=geometry.collision,
            visual_mesh=geometry.visual,
            drivable=geometry.drivable,
            spawns=spawns,
            goals=goals,
            routes=routes,
            world_from_source=None if dataset is None else dataset.world_from_source,
            field_dir=field_copy,
            dataset_dir=dataset_copy,
            extras={
                "region": geometry.region.to_json(),
                **kind_extras,
                "mesh_stats": {k: v for k, v in geometry.stats.items() if k != "config"},
                **(extras or {}),
            },
            overwrite=overwrite,
        )
    return scene if dataset is None else add_baked_texture(scene)  # the baked camera's texture


def _arena_tasks(geometry, tasks, seed, task_clearance, goal_radius):
    """Tasks scattered over an arena's drivable map, and its vehicle length (the table-top rule:
    ``recommended_vehicle_length``); a BundleError saying what to change when too few fit."""
    from scene_builder.drivable import NoPathError, sample_tasks

    radius = geometry.region.radius
    vehicle_length = recommended_vehicle_length(geometry.drivable)
    clearance = task_clearance or 0.6 * vehicle_length
    try:
        spawns, goals, routes = sample_tasks(
            geometry.drivable,
            tasks,
            seed=seed,
            clearance=clearance,
            goal_radius=goal_radius or 0.06 * radius,
            min_distance=0.3 * radius,
        )
    except NoPathError as error:
        share = geometry.drivable.grid.mean() * 100
        raise BundleError(
            f"{error}; the map is {share:.1f}% drivable of a {2 * radius:.1f} m square: lower "
            f"--task-clearance (now {clearance:.3g} m), or rebuild the map (--ground-tolerance, "
            "--region-radius), or film the ground around the scene from more sides"
        ) from None
    extras = {"scene_kind": "arena", "vehicle_length": vehicle_length}
    return spawns, goals, routes, extras


def _road_tasks(geometry, tasks, seed, goal_radius):
    """Tasks along a road's recorded route (``road.road_tasks``), and the road's extras (the
    contract with the simulator: scene kind, recorded route, camera height, the car's size)."""
    import numpy as np

    from scene_builder.geometry.ground import RoadPrior
    from scene_builder.road import recorded_route, road_tasks

    road = RoadPrior.from_json(geometry.stats["road"])
    spawns, goals, routes = road_tasks(geometry.drivable, road, tasks, seed, goal_radius)
    extras = {
        "scene_kind": "road",
        "recorded_route": np.round(recorded_route(road), 4).tolist(),
        "camera_height": round(float(np.mean(road.camera_heights)), 4),
        **road.vehicle_size(),
        "metric": road.metric,
        "vehicle_rule": "a 4.5 x 1.8 x 1.5 m car"
        + ("" if road.metric else ", in units where the capture camera rides 1.5 m high"),
    }
    return spawns, goals, routes, extras


def recommended_vehicle_length(drivable) -> float:
    """A sixth of the drivable area's equivalent diameter, in metres.

    Sized from what can be driven, not from the reconstructed region: a capture's region takes
    in the surroundings of what was filmed, so a vehicle sized from it can be wider than the
    drivable corridors between the obstacles.
    """
    area = float(drivable.grid.sum()) * drivable.resolution**2
    return round(2.0 * math.sqrt(area / math.pi) / 6.0, 4)


def _copy_dataset_at_field_resolution(dataset, dest: Path, field_dir: Path) -> None:
    """Copy the posed dataset into the bundle with its frames at the field's training size.

    The bundle carries the real frames for fidelity measures and the field's own resolution is
    all those measures use, so full-size frames would only make the bundle larger (by the
    square of the field's downscale factor). The cameras are scaled with the images;
    the COLMAP model is copied unchanged (its full-size intrinsics are what it was solved with).
    The copied field.json then names this copy, at a downscale of 1.
    """
    import cv2

    from scene_builder.datasets import save_dataset
    from scene_builder.train import STATE_FILE

    meta_path = field_dir / "field.json"
    meta = json.loads(meta_path.read_text())
    factor = int(meta.get("downscale", 1) or 1)
    # .sfm: structure from motion's work folder (its database is larger than the field)
    skip = shutil.ignore_patterns("images", "transforms.json", ".sfm", STAGE_FILE, STATE_FILE)
    shutil.copytree(dataset.root, dest, ignore=skip)
    (dest / "images").mkdir()
    frames = []
    for frame in dataset.frames:
        camera = frame.camera.scaled(1.0 / factor)
        target = dest / "images" / frame.image_path.name
        if factor == 1:
            shutil.copy2(frame.image_path, target)
        else:
            image = cv2.imread(str(frame.image_path), cv2.IMREAD_COLOR)
            if image is None:
                raise BundleError(f"{frame.image_path}: not a readable image")
            small = cv2.resize(image, (camera.width, camera.height), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(target), small, [cv2.IMWRITE_JPEG_QUALITY, 92])
        frames.append(replace(frame, image_path=target, camera=camera))
    save_dataset(replace(dataset, root=dest, frames=frames))
    meta["dataset"] = "../dataset"
    meta["downscale"] = 1
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
