"""The road map of a street scene: how well it covers the recorded route, and a figure.

Reads a road bundle (``scene.json`` extras ``scene_kind = "road"``), measures the share of the
recorded route on drivable cells and the drivable width square to the route at every route
sample (median, 10th percentile, minimum), and draws the drivable map over a top-down view of
the baked visual mesh (rays cast straight down, vertex colours), with the recorded route and the
tasks' spawns. Writes the table to the ``road_NAME`` section of ``benchmarks/RESULTS.md``
(``road_street`` for the shipped street) and the figure to ``assets/figures/NAME_map.png``.

    .venv/bin/python benchmarks/road_street.py
    .venv/bin/python benchmarks/road_street.py --scene assets/scenes/dashcam   # road_dashcam
    .venv/bin/python benchmarks/road_street.py --scene runs/my_street --figure my_street.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def route_widths(drivable, route: np.ndarray, reach: float) -> np.ndarray:
    """Drivable width square to the route at each sample (0 where the sample is off the map)."""
    tangent = np.gradient(route, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    step = 0.5 * drivable.resolution
    offsets = np.arange(step, reach, step)
    widths = np.full(len(route), step)
    for sign in (-1.0, 1.0):
        inside = drivable.is_drivable(
            route[:, None] + sign * offsets[None, :, None] * normal[:, None]
        )
        run = np.argmin(np.concatenate([inside, np.zeros((len(route), 1), bool)], 1), axis=1)
        widths += run * step
    return np.where(drivable.is_drivable(route), widths, 0.0)


def top_down(scene, drivable) -> np.ndarray:
    """The visual mesh seen from straight above, one pixel per map cell (rows: +y up)."""
    import trimesh

    from scene_builder.raycast import MeshCaster

    mesh = trimesh.load(scene.visual_mesh_path, force="mesh", process=False)
    caster = MeshCaster.from_trimesh(mesh, colours=True)
    rows, cols = np.indices(drivable.shape)
    xy = drivable.cell_centres(rows, cols)
    rays = np.zeros((*drivable.shape, 6), np.float32)
    rays[..., :2], rays[..., 2], rays[..., 5] = xy, mesh.bounds[1, 2] + 1.0, -1.0
    return caster.colours(caster.cast(rays), background=(1.0, 1.0, 1.0))[::-1]


def draw(scene, route: np.ndarray, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drivable = scene.drivable
    image = top_down(scene, drivable)
    x0, x1, y0, y1 = drivable.extent
    low, high = route.min(0) - 15, route.max(0) + 15
    figure, axis = plt.subplots(figsize=(10, 10 * (high[1] - low[1]) / (high[0] - low[0]) + 1))
    axis.imshow(np.clip(image, 0, 1), extent=(x0, x1, y0, y1))
    overlay = np.zeros((*drivable.shape, 4))
    overlay[drivable.grid[::-1]] = (0.1, 0.9, 0.2, 0.35)
    axis.imshow(overlay, extent=(x0, x1, y0, y1))
    axis.plot(route[:, 0], route[:, 1], color="red", lw=1.2, label="recorded route")
    for spawn in scene.spawns:
        axis.arrow(
            spawn.x, spawn.y, 3 * np.cos(spawn.yaw), 3 * np.sin(spawn.yaw),
            color="blue", width=0.4,
        )  # fmt: skip
    axis.set_xlim(low[0], high[0])
    axis.set_ylim(low[1], high[1])
    axis.set_xlabel("x (m)")
    axis.set_ylabel("y (m)")
    axis.set_title(f"{scene.name}: drivable map (green) over the top-down view; spawns in blue")
    axis.legend(loc="upper left")
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", type=Path, default=REPO / "assets" / "scenes" / "street")
    parser.add_argument("--figure", type=Path, help="default: assets/figures/NAME_map.png")
    args = parser.parse_args()
    from results import load, tee, write_section

    from scene_builder import load_scene

    load_at_start = load()
    scene = load_scene(args.scene)
    extras = scene.extras
    if extras.get("scene_kind") != "road":
        raise SystemExit(f"{args.scene}: not a road scene (extras scene_kind)")
    route = np.asarray(extras["recorded_route"], dtype=float)
    widths = route_widths(scene.drivable, route, reach=30.0)
    length = float(np.linalg.norm(np.diff(route, axis=0), axis=1).sum())
    with tee() as printed:
        print(
            f"{scene.name}: recorded route {length:.1f} m ({len(route)} samples every 0.5 m), "
            f"map {scene.drivable.shape[1]} x {scene.drivable.shape[0]} cells at "
            f"{scene.drivable.resolution:.2f} m\n"
        )
        print("| route on drivable cells | width median | width p10 | width min | "
              "map drivable | car (l x w x h) | camera height |")  # fmt: skip
        print("| ---: | ---: | ---: | ---: | ---: | --- | ---: |")
        print(
            f"| {100 * scene.drivable.is_drivable(route).mean():.1f}% "
            f"| {np.median(widths):.2f} m | {np.percentile(widths, 10):.2f} m "
            f"| {widths.min():.2f} m | {100 * scene.drivable.grid.mean():.2f}% "
            f"| {extras['vehicle_length']} x {extras['vehicle_width']} x "
            f"{extras['vehicle_height']} m | {extras['camera_height']:.2f} m |"
        )
    figure = args.figure or REPO / "assets" / "figures" / f"{scene.name}_map.png"
    draw(scene, route, figure)
    print(f"figure: {figure}")
    write_section(f"road_{scene.name}", printed.getvalue(), load_at_start=load_at_start)


if __name__ == "__main__":
    main()
