"""``scene-info``: a text summary of a bundle and a preview image.

The preview shows the drivable map from above (spawns as arrows, goals as circles, routes as
lines) beside one overview camera view per lighting preset. Views come from the radiance field
when the scene has one, and from the baked visual mesh: the mesh caster
(``scene_builder.raycast``) finds the hit triangle and its barycentric coordinates, and the
vertex colours are interpolated there (open3d's offscreen renderer can deadlock without a
display, so it is not used). Presets are applied as every camera applies them
(``scene_builder.lighting``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.atomic import atomic_path
from scene_builder.bundle import SceneBundle
from scene_builder.camera import local_directions, look_at
from scene_builder.lighting import scene_lighting
from scene_builder.mesh_check import load_checked_mesh
from scene_builder.raycast import MeshCaster


def scene_summary(scene: SceneBundle) -> str:
    """A few lines describing the bundle: size, geometry, map, tasks, lighting, field."""
    drivable = scene.drivable
    collision = load_checked_mesh(scene.collision_mesh_path)
    low, high = drivable.drivable_bounds()
    lines = [
        f"scene {scene.name!r} at {scene.root}",
        f"  arena size      {scene.arena_size:.3f} m (drivable area {high[0] - low[0]:.3f} x "
        f"{high[1] - low[1]:.3f} m)",
        f"  collision mesh  {len(collision.faces)} triangles, bounds "
        + " .. ".join(np.array2string(b, precision=3) for b in collision.bounds),
        f"  drivable map    {drivable.shape[1]} x {drivable.shape[0]} cells at "
        f"{drivable.resolution * 100:.1f} cm, {drivable.grid.mean() * 100:.1f}% drivable",
        f"  tasks           {len(scene.spawns)} spawns, {len(scene.goals)} goals, "
        f"{len(scene.routes)} routes",
        f"  lighting        {', '.join(scene.lighting)}",
        "  field           "
        + (f"{scene.field_backend} at {scene.field_dir}" if scene.field_dir else "none"),
        f"  dataset         {scene.dataset_dir or 'none'}",
    ]
    return "\n".join(lines)


class MeshViewRenderer:
    """Colour images of a vertex-coloured mesh by ray casting (see the module docstring)."""

    def __init__(self, mesh, background=(0.85, 0.88, 0.92)):
        self.caster = MeshCaster.from_trimesh(mesh, colours=True)
        self.background = np.asarray(background, dtype=np.float32)

    def render(self, camera_to_world, intrinsics, width, height) -> np.ndarray:
        """(H, W, 3) float32 colours in [0, 1]; background where no triangle is hit."""
        hits = self.caster.cast_cameras(
            np.asarray(camera_to_world)[None], local_directions(intrinsics, width, height)
        )
        image = self.caster.colours(hits, self.background).reshape(height, width, 3)
        return np.clip(image, 0, 1).astype(np.float32)


def overview_camera(scene: SceneBundle, size: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """A camera outside the arena's south-west corner, 35 degrees down onto its centre."""
    low, high = scene.drivable.drivable_bounds()
    centre = np.array([*(low + high) / 2, 0.0])
    distance = 1.1 * scene.arena_size
    direction = np.array([-0.6, -0.8, 0.0]) * np.cos(np.radians(35)) + [
        0,
        0,
        np.sin(np.radians(35)),
    ]
    pose = look_at(centre + distance * direction, centre)
    focal = 0.5 * size / np.tan(np.radians(30))  # 60 degree field of view
    return pose, (focal, focal, size / 2, size / 2)


def capture_camera(scene: SceneBundle, size: int) -> tuple[np.ndarray, tuple[float, ...]] | None:
    """The first frame of the scene's dataset, cropped to a centred square of ``size`` pixels.

    A radiance field is only trustworthy near the views it was trained on, so field previews
    are rendered from a real capture viewpoint.
    """
    if scene.dataset_dir is None:
        return None
    from scene_builder.datasets import load_dataset

    frame = load_dataset(scene.dataset_dir).frames[0]
    camera = frame.camera
    factor = size / min(camera.width, camera.height)
    focal = (camera.fx * factor, camera.fy * factor)
    return frame.camera_to_world, (*focal, size / 2, size / 2)


def render_preset_views(
    scene: SceneBundle, image_size: int, renderer: str
) -> dict[str, np.ndarray]:
    """One image (H, W, 3) per lighting preset from ``renderer`` ("field" or "mesh")."""
    pose, intrinsics = capture_camera(scene, image_size) or overview_camera(scene, image_size)
    field = scene.load_field() if renderer == "field" else None
    lighting = scene_lighting(scene, field)
    if field is not None:
        views = {}
        for name in scene.lighting:
            code, change = lighting.appearance(((name, 1.0),))
            out = field.render(pose[None], np.array(intrinsics), image_size, image_size, code)
            views[name] = change.apply(out.rgb[0].numpy())
        return views
    mesh = load_checked_mesh(scene.visual_mesh_path)
    base = MeshViewRenderer(mesh).render(pose, intrinsics, image_size, image_size)
    return {name: lighting.photometric(((name, 1.0),)).apply(base) for name in scene.lighting}


def write_preview(
    scene: SceneBundle, target: str | Path, image_size: int = 128, renderer: str = "auto"
) -> Path:
    """Write the preview PNG atomically (see the module docstring); returns its path.

    ``renderer="auto"`` shows a row of field views above a row of mesh views when the scene
    has a field (the two renderers the simulator offers), else the mesh row only.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if renderer == "auto":
        renderers = ["field", "mesh"] if scene.field_dir is not None else ["mesh"]
    else:
        renderers = [renderer]
    rows = {name: render_preset_views(scene, image_size, name) for name in renderers}
    columns = 1 + len(scene.lighting)
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(3.0 * columns, 3.2 * len(rows)), squeeze=False
    )
    _draw_map(axes[0, 0], scene)
    for row, (renderer_name, views) in enumerate(rows.items()):
        if row > 0:
            axes[row, 0].axis("off")
        for axis, (name, image) in zip(axes[row, 1:], views.items(), strict=True):
            axis.imshow(image)
            axis.set_title(f"{renderer_name}: {name}")
            axis.axis("off")
    figure.suptitle(f"{scene.name}: arena {scene.arena_size:.2f} m")
    figure.tight_layout()
    target = Path(target)
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return target


def _draw_map(axis, scene: SceneBundle) -> None:
    from matplotlib.patches import Circle

    drivable = scene.drivable
    x0, x1, y0, y1 = drivable.extent
    axis.imshow(drivable.grid, origin="lower", extent=(x0, x1, y0, y1), cmap="Greys_r", vmin=-0.5)
    for route in scene.routes:
        axis.plot(route[:, 0], route[:, 1], "-", color="tab:blue", lw=0.8, alpha=0.7)
    arrow = 0.04 * scene.arena_size
    for spawn in scene.spawns:
        axis.arrow(
            spawn.x,
            spawn.y,
            arrow * np.cos(spawn.yaw),
            arrow * np.sin(spawn.yaw),
            width=arrow * 0.15,
            color="tab:green",
        )
    for goal in scene.goals:
        axis.add_patch(Circle((goal.x, goal.y), goal.radius, fill=False, color="tab:red", lw=1.2))
    axis.set_title("drivable map (m)")
    axis.set_aspect("equal")
