"""Geometry figures of the bird scene, against the reference COLMAP reconstruction.

Default: one table for the shipped bundle (assets/scenes/bird):
- ground: the reference points on the table (COLMAP sparse/0 moved into the world frame with the
  bundle's world_from_source) and the collision mesh's ground vertices, their height around z = 0;
- horizontal rays at 2, 3 and 4 cm height from 16 directions toward the orbit centre: how many
  hit the bird (within 1.5 footprint radii of the bird's centre);
- median distance from the reference points on the table and the bird to the collision mesh,
  as a share of the arena size (target < 1%);
- drivable map: share of the bird's footprint cells blocked, share of drivable cells beyond the
  mesh's table edge (both by ray casts), drivable area;
- sizes of the bundle's files.

``--compare BUILD`` (a ``build-scene`` stage cache: its ``3_align`` dataset and ``4_field``
field) renders the field's depth views once and prints the same figures, one row per way of
turning the field into geometry: TSDF fusion of the rendered depth with and without each fix of
scene_builder/mesh.py, marching cubes on the field's density (embedded backend), and the
sparse-points geometry. It is the measurement behind mesh.py's choices (about 10 minutes).

    .venv/bin/python benchmarks/scene_bird.py [--scene assets/scenes/bird]
    .venv/bin/python benchmarks/scene_bird.py --compare /work/scratch/birdbuild/bird.build
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import trimesh
from results import load, tee, write_section

from common.open3d_compat import import_open3d
from scene_builder.bundle import load_scene

REPO = Path(__file__).resolve().parents[1]


def reference_points(world_from_source: np.ndarray, sparse: Path) -> np.ndarray:
    import pycolmap

    model = pycolmap.Reconstruction(str(sparse))
    points = np.array([p.xyz for p in model.points3D.values()])
    return points @ world_from_source[:3, :3].T + world_from_source[:3, 3]


def raycaster(mesh: trimesh.Trimesh):
    o3d = import_open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
        o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)),
    )
    return o3d, scene


def figures(mesh, drivable, centre, radius, arena_size, points) -> dict[str, str]:
    """The bird figures of one collision mesh and drivable map (module docstring)."""
    o3d, caster = raycaster(mesh)
    horizontal = np.linalg.norm(points[:, :2] - centre, axis=1)
    inside = horizontal <= radius
    # The bird: reference points clearly above the table near the centre.
    bird = inside & (points[:, 2] > 0.015) & (horizontal < 0.3 * radius)
    bird_centre = np.median(points[bird, :2], axis=0)
    bird_radius = np.percentile(np.linalg.norm(points[bird, :2] - bird_centre, axis=1), 95)
    table = (
        inside
        & (np.abs(points[:, 2]) < 0.02)
        & (np.linalg.norm(points[:, :2] - bird_centre, axis=1) > bird_radius)
    )
    rows: dict[str, str] = {"arena size (m)": f"{arena_size:.3f}"}
    rows["reference table points: z median / std (mm)"] = (
        f"{np.median(points[table, 2]) * 1e3:+.1f} / {points[table, 2].std() * 1e3:.1f} "
        f"(n={table.sum()})"
    )
    # The mesh under the reference table points: how flat, and how much of the table it covers.
    down_at = np.column_stack(
        [points[table, :2], np.full(table.sum(), 0.2), np.tile([0, 0, -1.0], (table.sum(), 1))]
    )
    height = 0.2 - caster.cast_rays(o3d.core.Tensor(down_at.astype(np.float32)))["t_hit"].numpy()
    found = np.isfinite(height)
    rows["mesh under the table points: z median / std (mm), found"] = (
        f"{np.median(height[found]) * 1e3:+.1f} / {height[found].std() * 1e3:.1f}, "
        f"{found.mean() * 100:.0f}%"
        if found.any()
        else "no mesh"
    )
    rows["bird: centre (m), footprint radius (m)"] = (
        f"{np.round(bird_centre, 3)}, {bird_radius:.3f}"
    )
    hits = []
    for ray_height in (0.02, 0.03, 0.04):
        angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        start = centre + 0.8 * radius * np.stack([np.cos(angles), np.sin(angles)], 1)
        directions = np.stack([-np.cos(angles), -np.sin(angles), np.zeros(16)], 1)
        rays = np.concatenate([start, np.full((16, 1), ray_height), directions], 1)
        t = caster.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))["t_hit"].numpy()
        hit_xy = start + np.where(np.isfinite(t), t, 0)[:, None] * directions[:, :2]
        on_bird = np.isfinite(t) & (
            np.linalg.norm(hit_xy - bird_centre, axis=1) < 1.5 * bird_radius
        )
        hits.append(f"{on_bird.sum()}/16")
    rows["horizontal rays at 2, 3, 4 cm hitting the bird"] = ", ".join(hits)
    evaluated = table | bird
    distance = caster.compute_distance(
        o3d.core.Tensor(points[evaluated].astype(np.float32))
    ).numpy()
    rows["median distance ref points -> mesh (mm, % arena)"] = (
        f"{np.median(distance) * 1e3:.2f} mm, {100 * np.median(distance) / arena_size:.2f}% "
        f"(n={evaluated.sum()}; table {np.median(distance[table[evaluated]]) * 1e3:.2f} mm, "
        f"bird {np.median(distance[bird[evaluated]]) * 1e3:.2f} mm)"
    )
    # Drivable map: bird footprint blocked, nothing drivable beyond the mesh's table edge.
    rows_i, cols_i = np.indices(drivable.shape)
    cells = drivable.cell_centres(rows_i, cols_i).reshape(-1, 2)
    in_footprint = np.linalg.norm(cells - bird_centre, axis=1) < 0.8 * bird_radius
    blocked = ~drivable.is_drivable(cells[in_footprint])
    rows["bird footprint cells blocked"] = f"{blocked.mean() * 100:.1f}%"
    down = np.concatenate(
        [cells, np.full((len(cells), 1), 0.2), np.tile([0, 0, -1.0], (len(cells), 1))], 1
    ).astype(np.float32)
    depth = caster.cast_rays(o3d.core.Tensor(down))["t_hit"].numpy()
    no_ground = ~(np.abs(0.2 - depth) < 0.01)
    beyond_edge = drivable.is_drivable(cells[no_ground])
    rows["drivable cells where the mesh has no ground (cliff)"] = (
        f"{beyond_edge.sum()} of {no_ground.sum()}"
    )
    rows["drivable area (m^2), share of the map"] = (
        f"{drivable.grid.sum() * drivable.resolution**2:.3f}, {drivable.grid.mean() * 100:.1f}%"
    )
    rows["collision mesh faces"] = f"{len(mesh.faces)}"
    return rows


def print_table(rows: dict[str, str]) -> None:
    width = max(len(name) for name in rows)
    print(f"| {'measure':<{width}} | value |")
    print(f"| {'-' * width} | ----- |")
    for name, value in rows.items():
        print(f"| {name:<{width}} | {value} |")


def bundle_figures(scene_dir: Path, sparse: Path) -> None:
    scene = load_scene(scene_dir)
    mesh = trimesh.load(scene.collision_mesh_path, force="mesh", process=False)
    region = scene.extras.get("region", {})
    centre = np.array(region.get("centre", [0.0, 0.0]))
    radius = float(region.get("radius", scene.arena_size / 2))
    points = reference_points(scene.world_from_source, sparse)
    rows = figures(mesh, scene.drivable, centre, radius, scene.arena_size, points)
    sizes = {p.name: p.stat().st_size for p in scene.root.iterdir() if p.is_file()}
    total = sum(p.stat().st_size for p in scene.root.rglob("*") if p.is_file())
    rows["bundle size (MB)"] = (
        f"{total / 1e6:.1f} ({', '.join(f'{k} {v / 1e6:.1f}' for k, v in sizes.items())})"
    )
    rows["mesh source"] = str(scene.extras.get("mesh_stats", {}).get("source", "field"))
    print_table(rows)


def density_marching_cubes(render_field, region, voxel: float, level_opacity: float = 0.5):
    """Marching cubes (scikit-image) on the embedded field's density sampled on a voxel grid.

    Level rule: the density at which one voxel of matter stops ``level_opacity`` of the light,
    sigma * voxel = -ln(1 - level_opacity) (density per metre), so the level scales with the
    grid like the TSDF's surface does.
    """
    import torch
    from skimage import measure

    model = render_field.model  # the embedded backend's EmbeddedField
    low = np.array([*(region.centre - region.radius), region.bottom])
    high = np.array([*(region.centre + region.radius), region.top])
    axes = [np.arange(a, b + voxel, voxel) for a, b in zip(low, high, strict=True)]
    density = np.empty([len(a) for a in axes], np.float32)
    gx, gy = np.meshgrid(axes[0], axes[1], indexing="ij")
    with torch.no_grad():
        for k, z in enumerate(axes[2]):
            points = torch.tensor(np.stack([gx, gy, np.full_like(gx, z)], -1).reshape(-1, 3))
            grid = model.bounds.grid_coordinates(model.bounds.normalise(points.float()))
            raw, _ = model.grid_features(grid)
            sigma = model.activate_density(raw) / model.bounds.scale  # per metre
            density[:, :, k] = sigma.reshape(gx.shape).numpy()
    level = -np.log(1 - level_opacity) / voxel
    if not density.min() < level < density.max():
        raise RuntimeError(f"density never crosses the level {level:.1f}/m")
    vertices, faces, _, _ = measure.marching_cubes(density, level, spacing=(voxel,) * 3)
    return trimesh.Trimesh(vertices + low, faces, process=True)


def compare(build: Path, sparse: Path) -> None:
    """One row of figures per way of getting geometry from the field (module docstring)."""
    import json

    from scene_builder.build import geometry_from_points
    from scene_builder.datasets import load_dataset
    from scene_builder.fields import load_field
    from scene_builder.mesh import (
        Geometry,
        MeshConfig,
        arena_region,
        clean_mesh,
        drivable_from_mesh,
        geometry_from_views,
        ground_area,
        ground_plate,
        render_depth_views,
    )

    dataset = load_dataset(build / "3_align")
    render_field = load_field(build / "4_field")
    poses = dataset.poses
    intrinsics = np.array(
        [[f.camera.fx, f.camera.fy, f.camera.cx, f.camera.cy] for f in dataset.frames]
    )
    size = (dataset.camera.width, dataset.camera.height)
    default = MeshConfig()
    region = arena_region(poses, default)
    points = reference_points(dataset.world_from_source, sparse)
    tick = time.perf_counter()
    views = render_depth_views(render_field, poses, intrinsics, size, region, default)
    render_s = time.perf_counter() - tick
    print(f"rendered {len(views)} depth views in {render_s:.0f} s (both renders)")
    voxel = 2 * region.radius / default.resolution
    tolerance = 0.015 * region.radius
    map_resolution = region.radius / 100

    def from_mesh(mesh) -> Geometry:
        collision = clean_mesh(mesh, region, default)
        drivable = drivable_from_mesh(
            collision, region, map_resolution, tolerance, default.min_island_fraction
        )
        return Geometry(collision, collision, drivable, region)

    def marching_cubes(prior: bool) -> Geometry:
        mesh = density_marching_cubes(render_field, region, voxel)
        if prior:  # the field's density above the ground band, the plane below it
            keep = mesh.triangles_center[:, 2] > tolerance
            mesh = trimesh.util.concatenate(
                [
                    mesh.submesh([np.nonzero(keep)[0]], append=True),
                    ground_plate(region, ground_area(poses), 2 * voxel),
                ]
            )
        return from_mesh(mesh)

    variants = {
        "TSDF, expected depth, opacity >= 0.7 only": lambda: geometry_from_views(
            views, poses, region, replace(default, ground_prior=False, min_surface_opacity=0.0)
        ),
        "TSDF + band opacity >= 0.5": lambda: geometry_from_views(
            views, poses, region, replace(default, ground_prior=False)
        ),
        "TSDF + ground prior, no band opacity": lambda: geometry_from_views(
            views, poses, region, replace(default, min_surface_opacity=0.0)
        ),
        "TSDF + band opacity + ground prior (default)": lambda: geometry_from_views(
            views, poses, region, default
        ),
        "marching cubes on density (one voxel stops half the light)": lambda: marching_cubes(
            prior=False
        ),
        "marching cubes above the ground band + ground plate": lambda: marching_cubes(prior=True),
        "sparse points + ground plate (--geometry points)": lambda: geometry_from_points(
            build / "3_align", default
        ),
    }
    table: dict[str, dict[str, str]] = {}
    for name, make in variants.items():
        tick = time.perf_counter()
        try:
            geometry = make()
        except Exception as error:  # a variant that fails is a result too
            table[name] = {"error": f"{type(error).__name__}: {error}"}
            print(name, json.dumps(table[name]), flush=True)
            continue
        seconds = time.perf_counter() - tick
        low, high = geometry.drivable.drivable_bounds()
        arena = float(np.linalg.norm(high - low))
        table[name] = figures(
            geometry.collision, geometry.drivable, region.centre, region.radius, arena, points
        )
        table[name]["time (s)"] = f"{seconds:.0f}" + (
            f" + {render_s:.0f} rendering" if name.startswith("TSDF") else ""
        )
        print(name, json.dumps(table[name]), flush=True)
    columns = [
        "mesh under the table points: z median / std (mm), found",
        "horizontal rays at 2, 3, 4 cm hitting the bird",
        "median distance ref points -> mesh (mm, % arena)",
        "bird footprint cells blocked",
        "drivable cells where the mesh has no ground (cliff)",
        "drivable area (m^2), share of the map",
        "collision mesh faces",
        "time (s)",
    ]
    print()
    print("| geometry | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, rows in table.items():
        print(
            f"| {name} | " + " | ".join(rows.get(c, rows.get("error", "")) for c in columns) + " |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=Path, default=REPO / "assets" / "scenes" / "bird")
    parser.add_argument(
        "--reference",
        type=Path,
        default=REPO.parent / "shared" / "data" / "bird_capture" / "sparse" / "0",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="BUILD",
        help="a build-scene stage cache (--work folder): compare ways of extracting geometry",
    )
    args = parser.parse_args()
    load_at_start = load()
    if args.compare:
        with tee() as printed:
            compare(args.compare, args.reference)
        table = printed.getvalue()[printed.getvalue().rindex("| geometry |") :]
        write_section("scene_bird --compare", table, load_at_start=load_at_start)
    else:
        with tee() as printed:
            bundle_figures(args.scene, args.reference)
        write_section("scene_bird", printed.getvalue(), load_at_start=load_at_start)


if __name__ == "__main__":
    main()
