"""Geometry figures of the bird scene bundle, against the reference COLMAP reconstruction.

Prints one table:
- ground: the reference points on the table (COLMAP sparse/0 moved into the world frame with the
  bundle's world_from_source) and the collision mesh's ground vertices, their height around z = 0;
- horizontal rays at 2, 3 and 4 cm height from 16 directions toward the orbit centre: how many
  hit the bird (within 1.5 footprint radii of the bird's centre);
- median distance from the reference points on the table and the bird to the collision mesh,
  as a share of the arena size (target < 1%);
- drivable map: share of the bird's footprint cells blocked, share of drivable cells beyond the
  mesh's table edge (both by ray casts), drivable area;
- sizes of the bundle's files.

    .venv/bin/python benchmarks/scene_bird.py [--scene assets/scenes/bird]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import trimesh

from driveenv.open3d_compat import import_open3d
from scene_builder.bundle import load_scene

REPO = Path(__file__).resolve().parents[1]


def reference_points(scene, sparse: Path) -> np.ndarray:
    import pycolmap

    model = pycolmap.Reconstruction(str(sparse))
    points = np.array([p.xyz for p in model.points3D.values()])
    similarity = scene.world_from_source
    return points @ similarity[:3, :3].T + similarity[:3, 3]


def raycaster(mesh: trimesh.Trimesh):
    o3d = import_open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(mesh.vertices.astype(np.float32)),
        o3d.core.Tensor(mesh.faces.astype(np.uint32)),
    )
    return o3d, scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=Path, default=REPO / "assets" / "scenes" / "bird")
    parser.add_argument(
        "--reference",
        type=Path,
        default=REPO.parent / "shared" / "data" / "bird_capture" / "sparse" / "0",
    )
    args = parser.parse_args()
    scene = load_scene(args.scene)
    mesh = trimesh.load(scene.collision_mesh_path, force="mesh", process=False)
    o3d, caster = raycaster(mesh)
    region = scene.extras.get("region", {})
    centre = np.array(region.get("centre", [0.0, 0.0]))
    radius = float(region.get("radius", scene.arena_size / 2))
    points = reference_points(scene, args.reference)
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
    rows: list[tuple[str, str]] = []
    rows.append(("arena size (m)", f"{scene.arena_size:.3f}"))
    rows.append(
        (
            "reference table points: z median / std (mm)",
            f"{np.median(points[table, 2]) * 1e3:+.1f} / {points[table, 2].std() * 1e3:.1f} "
            f"(n={table.sum()})",
        )
    )
    ground_vertices = mesh.vertices[np.abs(mesh.vertices[:, 2]) < 0.02]
    rows.append(
        (
            "mesh ground vertices: z median / std (mm)",
            f"{np.median(ground_vertices[:, 2]) * 1e3:+.1f} / {ground_vertices[:, 2].std() * 1e3:.1f}",
        )
    )
    rows.append(
        ("bird: centre (m), footprint radius (m)", f"{np.round(bird_centre, 3)}, {bird_radius:.3f}")
    )

    # Horizontal rays from every side toward the orbit centre (the cameras' mean position).
    for height in (0.02, 0.03, 0.04):
        angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        start = centre + 0.8 * radius * np.stack([np.cos(angles), np.sin(angles)], 1)
        directions = np.stack([-np.cos(angles), -np.sin(angles), np.zeros(16)], 1)
        rays = np.concatenate([start, np.full((16, 1), height), directions], 1).astype(np.float32)
        t = caster.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()
        hit_xy = start + t[:, None] * directions[:, :2]
        on_bird = np.isfinite(t) & (
            np.linalg.norm(hit_xy - bird_centre, axis=1) < 1.5 * bird_radius
        )
        rows.append(
            (f"horizontal rays at {height * 100:.0f} cm hitting the bird", f"{on_bird.sum()}/16")
        )

    # Distance from reference points (table + bird) to the collision mesh.
    evaluated = table | bird
    distance = caster.compute_distance(
        o3d.core.Tensor(points[evaluated].astype(np.float32))
    ).numpy()
    rows.append(
        (
            "median distance ref points -> mesh (mm, % arena)",
            f"{np.median(distance) * 1e3:.2f} mm, {100 * np.median(distance) / scene.arena_size:.2f}% "
            f"(n={evaluated.sum()}; table {np.median(distance[table[evaluated]]) * 1e3:.2f} mm, "
            f"bird {np.median(distance[bird[evaluated]]) * 1e3:.2f} mm)",
        )
    )

    # Drivable map: bird footprint blocked, nothing drivable beyond the mesh's table edge.
    drivable = scene.drivable
    rows_i, cols_i = np.indices(drivable.shape)
    cells = drivable.cell_centres(rows_i, cols_i).reshape(-1, 2)
    in_footprint = np.linalg.norm(cells - bird_centre, axis=1) < 0.8 * bird_radius
    blocked = ~drivable.is_drivable(cells[in_footprint])
    rows.append(("bird footprint cells blocked", f"{blocked.mean() * 100:.1f}%"))
    down = np.concatenate(
        [cells, np.full((len(cells), 1), 0.2), np.tile([0, 0, -1.0], (len(cells), 1))], 1
    ).astype(np.float32)
    depth = caster.cast_rays(o3d.core.Tensor(down))["t_hit"].numpy()
    no_ground = ~(np.abs(0.2 - depth) < 0.01)
    beyond_edge = drivable.is_drivable(cells[no_ground])
    rows.append(
        (
            "drivable cells where the mesh has no ground (cliff)",
            f"{beyond_edge.sum()} of {no_ground.sum()}",
        )
    )
    rows.append(
        (
            "drivable area (m^2), share of the map",
            f"{drivable.grid.sum() * drivable.resolution**2:.3f}, {drivable.grid.mean() * 100:.1f}%",
        )
    )
    sizes = {p.name: p.stat().st_size for p in scene.root.iterdir() if p.is_file()}
    total = sum(p.stat().st_size for p in scene.root.rglob("*") if p.is_file())
    rows.append(("collision mesh faces", f"{len(mesh.faces)}"))
    rows.append(
        (
            "bundle size (MB)",
            f"{total / 1e6:.1f} ({', '.join(f'{k} {v / 1e6:.1f}' for k, v in sizes.items())})",
        )
    )

    width = max(len(name) for name, _ in rows)
    print(f"| {'measure':<{width}} | value |")
    print(f"| {'-' * width} | ----- |")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")


if __name__ == "__main__":
    main()
