"""Geometry from a radiance field: collision mesh, visual mesh with baked colours, drivable map.

Steps, and why each uses what it uses:

1. Depth views. The field renders depth, colour and opacity from the training cameras (at a
   reduced size) and from a ring of virtual cameras a few centimetres above the ground looking
   at the orbit centre, so the low sides of obstacles, which a small vehicle's camera sees, are
   covered. Depth comes through the render API (contracts.md section 2), so every backend works.
   A pixel is trusted when its opacity reaches ``min_accumulation`` and the field's weight sits
   at the rendered depth: a second render with ``surface_depth`` set to it (samples in a band of
   one field cell each side) must reach ``min_surface_opacity``. On the bird (benchmarks/
   scene_bird.py) that band opacity is 0.86 (median) on the figurine, 0.33 on the floaters the
   expected depth of haze makes over the white table, 0.12 elsewhere over the table.
2. The ground prior. The world frame puts the ground at z = 0 (a plane fitted to the sparse
   points). Inside the area the training cameras circled, a pixel whose rendered surface lies at
   or below that plane sees ground: it fuses the plane's depth. The field renders a white,
   textureless table as a far backdrop below it (expected depth decimetres beyond the plane),
   which fused as it is left the table 60% missing and the rest 3-5 cm bumpy. Trusted surfaces
   above the plane keep the field's depth; untrusted pixels above it are left out.
   Fusion: open3d's tensor ``VoxelBlockGrid`` TSDF (``ScalableTSDFVolume`` returns an empty
   mesh in open3d 0.20, and the offscreen renderer can deadlock, so neither is used), with every
   view integrated into every block of the region, so views that see past a floater vote it
   away. TSDF rather than marching cubes on the field's density, by measurement
   (benchmarks/scene_bird.py ``--compare``): on the bird the density's level set is closer to
   the reference points (0.95 mm median against 1.54 mm) but keeps floaters that block 2-3 of
   16 horizontal rays toward the bird, and the density is not part of the render API.
3. Cleaning with trimesh (and open3d's quadric decimation, which trimesh only offers through an
   extra package): crop to the arena region, drop connected components smaller than a fraction
   of the largest (floaters), fill small holes, simplify to a face budget.
4. Colours: each vertex takes the field's colour from the views in which it is visible (depth
   test against the rendered depth), weighted by how squarely the view sees it.
5. Drivable map: per cell, a ray cast straight down from above must meet the ground (within
   ``ground_tolerance`` of the ground level found near z = 0) before anything else (open3d
   ``RaycastingScene``), so obstacles of any height block their footprint and cells beyond the
   table's edge, which meet no ground, are cliffs. Small islands are dropped, one-cell gaps in
   the ground are closed.
6. Optional, for parts that must be dynamic: ``convex_parts`` (CoACD, extra ``driveenv[coacd]``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from scipy import ndimage

from common.atomic import atomic_path
from common.config_cli import option
from common.open3d_compat import import_open3d
from scene_builder.drivable import DrivableMap
from scene_builder.errors import MeshError

GEOMETRY_FILE = "geometry.json"
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])

Progress = Callable[[int, int, str], None]  # (done, total, what) for a progress display


@dataclass
class MeshConfig:
    """How geometry is extracted; lengths in metres unless the name says otherwise."""

    resolution: int = option(
        256, "TSDF voxels across the arena region's widest side", flag="tsdf-resolution"
    )
    target_faces: int = option(120_000, "face budget of the collision mesh")
    render_scale: float = option(
        0.25, "size of the rendered training views as a fraction of the captured images"
    )
    max_training_views: int = option(92, "training views rendered for depth fusion")
    virtual_views: int = option(
        16, "virtual cameras per ring (rings near the ground) rendered for depth fusion"
    )
    virtual_size: int = option(96, "pixels per side of a virtual view")
    # Virtual camera rings as (distance from centre, height), in units of the orbit radius: low
    # ones see obstacles as a small vehicle does, high ones see the ground out to the arena edge.
    virtual_rings: tuple[tuple[float, float], ...] = ((1.0, 0.15), (1.0, 0.4), (1.5, 1.0))
    min_accumulation: float = option(0.7, "opacity a rendered ray must reach to give a depth")
    # Opacity of a thin band (one field cell each side) around the rendered depth: a surface
    # stops the ray there, semi-transparent haze spreads its weight over decimetres (step 1).
    min_surface_opacity: float = option(
        0.5, "light a band one field cell around a pixel's depth must stop for it to be fused"
    )
    # The ground prior (step 2): inside the cameras' circle the ground is the plane z = 0.
    ground_prior: bool = option(
        True, "fuse the plane z = 0 as the ground inside the cameras' circle"
    )
    truncation_voxels: float = option(4.0, "TSDF truncation distance, in voxels")
    weight_threshold: float = option(2.0, "TSDF weight a voxel needs to be kept")
    region_factor: float = option(
        2.0, "arena radius as this x the cameras' largest distance from the orbit centre"
    )
    region_radius: float | None = option(
        None, "arena radius in metres around the orbit centre (overrides --region-factor)"
    )
    min_component_fraction: float = option(
        0.05, "drop mesh components with fewer faces than this x the largest's"
    )
    hole_edges: int = option(64, "fill holes bounded by at most this many edges")
    map_resolution: float | None = option(
        None, "drivable-map metres per pixel (default: arena radius / 100)"
    )
    ground_tolerance: float | None = option(
        None, "height still counted as ground, metres (default: 1.5% of the arena radius)"
    )
    min_island_fraction: float = option(
        0.05, "drop drivable islands smaller than this x the largest"
    )

    def __post_init__(self) -> None:
        if self.target_faces < 100 or self.resolution < 16:
            raise MeshError(
                f"--target-faces {self.target_faces} / --tsdf-resolution {self.resolution}: "
                "need at least 100 faces and 16 voxels"
            )
        if not 0 <= self.min_surface_opacity <= 1:
            raise MeshError(f"--min-surface-opacity {self.min_surface_opacity}: must be in [0, 1]")
        if self.max_training_views < 1 or self.virtual_views < 0 or not 0 < self.render_scale <= 1:
            raise MeshError(
                f"--max-training-views {self.max_training_views} / --virtual-views "
                f"{self.virtual_views} / --render-scale {self.render_scale}: need at least 1 "
                "view, no negative count, and a scale in (0, 1]"
            )


@dataclass
class Region:
    """The arena: a disc of ``radius`` around ``centre`` (x, y) on the ground, up to ``top``."""

    centre: np.ndarray
    radius: float
    bottom: float
    top: float

    def to_json(self) -> dict[str, Any]:
        return {
            "centre": [float(c) for c in self.centre],
            "radius": float(self.radius),
            "bottom": float(self.bottom),
            "top": float(self.top),
        }


@dataclass
class Geometry:
    """What ``extract_geometry`` produces; saved to and loaded from a folder by the build cache."""

    collision: trimesh.Trimesh
    visual: trimesh.Trimesh
    drivable: DrivableMap
    region: Region
    stats: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | Path) -> Path:
        """Write collision.obj, visual.ply, drivable.npz and geometry.json atomically."""
        folder = Path(folder)
        with atomic_path(folder) as tmp:
            tmp.mkdir(parents=True)
            self.collision.export(tmp / "collision.obj")
            self.visual.export(tmp / "visual.ply")
            np.savez_compressed(
                tmp / "drivable.npz",
                grid=self.drivable.grid,
                origin_xy=self.drivable.origin_xy,
                resolution=self.drivable.resolution,
            )
            meta = {"region": self.region.to_json(), "stats": self.stats}
            (tmp / GEOMETRY_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Geometry:
        folder = Path(folder)
        try:
            meta = json.loads((folder / GEOMETRY_FILE).read_text())
            data = np.load(folder / "drivable.npz")
            collision = trimesh.load(folder / "collision.obj", force="mesh", process=False)
            visual = trimesh.load(folder / "visual.ply", force="mesh", process=False)
        except (OSError, ValueError, KeyError) as error:
            raise MeshError(f"{folder}: unreadable geometry ({error})") from None
        region = meta["region"]
        return cls(
            collision=collision,
            visual=visual,
            drivable=DrivableMap(data["grid"], data["origin_xy"], float(data["resolution"])),
            region=Region(
                np.array(region["centre"]), region["radius"], region["bottom"], region["top"]
            ),
            stats=meta.get("stats", {}),
        )


@dataclass
class DepthView:
    """One rendered view: pose (OpenGL c2w), fx fy cx cy, and the field's rgb/depth/opacity."""

    camera_to_world: np.ndarray
    intrinsics: np.ndarray
    rgb: np.ndarray  # (H, W, 3)
    depth: np.ndarray  # (H, W) z-depth, 0 where unknown
    # (H, W) opacity of the whole ray and of a thin band around ``depth``; None: not rendered
    # (depth from a mesh, all of it trusted)
    opacity: np.ndarray | None = None
    surface_opacity: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.depth.shape[1], self.depth.shape[0]


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world 4x4 (OpenGL axes: x right, y up, looking down -z) from eye to target."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = (
        right,
        np.cross(right, forward),
        -forward,
        eye,
    )
    return pose


def orbit_centre(poses: np.ndarray) -> np.ndarray:
    """x, y of the point nearest to every camera's optical axis: what an orbit looks at.

    The cameras' mean position is biased by uneven sampling along the orbit (for the bird it
    lies 4 cm beside the figurine); captures that do not orbit (parallel axes) use the mean.
    """
    forward = -poses[:, :3, 2] / np.linalg.norm(poses[:, :3, 2], axis=1, keepdims=True)
    projector = np.eye(3)[None] - forward[:, :, None] * forward[:, None, :]
    system = projector.sum(axis=0)
    if np.linalg.cond(system) > 1e6:
        return poses[:, :2, 3].mean(axis=0)
    focus = np.linalg.solve(system, np.einsum("nij,nj->i", projector, poses[:, :3, 3]))
    return focus[:2]


def arena_region(poses: np.ndarray, config: MeshConfig) -> Region:
    """The arena around the cameras' orbit centre (``orbit_centre``; the ground is z = 0)."""
    centre = orbit_centre(poses)
    orbit = float(np.linalg.norm(poses[:, :2, 3] - centre, axis=1).max())
    if config.region_radius is not None:
        radius = float(config.region_radius)
    else:
        radius = config.region_factor * max(orbit, 1e-6)
    top = max(float(poses[:, 2, 3].max()), 0.0) + 0.5 * radius
    return Region(centre, radius, -0.25 * radius, top)


def virtual_poses(region: Region, orbit_radius: float, config: MeshConfig) -> np.ndarray:
    """Rings of cameras around the orbit centre (``config.virtual_rings``), facing the centre."""
    poses = []
    for ring, (distance, height) in enumerate(config.virtual_rings):
        for index in range(config.virtual_views):
            angle = 2 * np.pi * (index + 0.5 * ring) / config.virtual_views
            offset = distance * orbit_radius * np.array([np.cos(angle), np.sin(angle)])
            eye = np.array([*(region.centre + offset), height * orbit_radius])
            target = np.array([*region.centre, 0.3 * min(height, 0.4) * orbit_radius])
            poses.append(look_at(eye, target))
    return np.array(poses).reshape(-1, 4, 4)


def render_views(
    render_field,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    width: int,
    height: int,
    config: MeshConfig,
    progress: Progress | None = None,
    label: str = "views",
) -> list[DepthView]:
    """Render colour, depth and opacity for each pose, and the opacity of a band at that depth.

    The band opacity comes from a second render with ``surface_depth`` set to the rendered
    depth (samples only in a thin band around it, the render API's fast path). ``trusted_mask``
    then keeps pixels where the field's weight sits at the rendered depth, not spread along the
    ray (whose expected depth then lies in empty space).
    """
    views = []
    for index, (pose, intr) in enumerate(zip(poses, intrinsics, strict=True)):
        out = render_field.render(pose[None], intr, width, height, appearance="capture")
        depth = np.nan_to_num(out.depth[0].numpy().astype(np.float32), nan=0.0, posinf=0.0)
        band = render_field.render(
            pose[None], intr, width, height, appearance="capture", surface_depth=depth[None]
        )
        views.append(
            DepthView(
                pose,
                np.asarray(intr, float),
                out.rgb[0].numpy(),
                depth,
                out.accumulation[0].numpy(),
                band.accumulation[0].numpy(),
            )
        )
        if progress:
            progress(index + 1, len(poses), label)
    return views


def depth_inside_region(view: DepthView, region: Region, margin: float) -> np.ndarray:
    """The view's depth with pixels whose surface point lies outside the region set to 0.

    The walls and floor of the room are not part of the arena; leaving them out keeps the TSDF
    small (its block count is bounded by the region's volume).
    """
    width, height = view.size
    fx, fy, cx, cy = view.intrinsics
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    local = np.stack([(u - cx) / fx, -(v - cy) / fy, -np.ones_like(u)], -1) * view.depth[..., None]
    points = local @ view.camera_to_world[:3, :3].T + view.camera_to_world[:3, 3]
    inside = (
        (np.linalg.norm(points[..., :2] - region.centre, axis=-1) <= region.radius + margin)
        & (points[..., 2] >= region.bottom - margin)
        & (points[..., 2] <= region.top + margin)
    )
    return np.where(inside & (view.depth > 0), view.depth, 0).astype(np.float32)


def ground_area(poses: np.ndarray):
    """The area the cameras circled: the Delaunay triangulation of their x, y positions (a
    ``find_simplex(xy) >= 0`` test); ground beyond it was only seen at grazing angles.

    None when the cameras do not enclose an area (fewer than three, or along a line, as when
    walking down a street: the hull's area under 1% of the square of their extent).
    """
    from scipy.spatial import Delaunay, QhullError

    xy = np.asarray(poses)[:, :2, 3]
    if len(xy) < 3:
        return None
    try:
        area = Delaunay(xy)
    except QhullError:
        return None
    corners = xy[area.simplices]
    a, b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    if 0.5 * np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum() < 0.01 * np.ptp(xy, 0).max() ** 2:
        return None
    return area


def ground_prior_depth(view: DepthView, area, config: MeshConfig) -> np.ndarray:
    """The depth to fuse for one view, with the ground prior (module docstring, step 2).

    A pixel whose rendered surface lies at or below the plane z = 0 gets the plane's depth
    when its ray meets the plane inside ``area`` (ground: the field rendered nothing above it)
    and 0 elsewhere (beyond the circled area a table may end); a pixel whose surface is above
    the plane keeps the field's depth when trusted and gets 0 (unknown) when not.
    """
    directions = pixel_directions(view.camera_to_world, view.intrinsics, *view.size)
    origin = view.camera_to_world[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        plane_t = np.where(directions[..., 2] < 0, -origin[2] / directions[..., 2], np.inf)
    finite = np.isfinite(plane_t)
    inside = np.zeros_like(finite)
    crossing = origin[:2] + plane_t[finite][:, None] * directions[finite][:, :2]
    inside[finite] = area.find_simplex(crossing) >= 0
    below = finite & (view.depth >= plane_t)
    depth = np.where(trusted_mask(view, config) & ~below, view.depth, 0.0)
    return np.where(below & inside, plane_t, depth).astype(np.float32)


def fusion_view(view: DepthView, area, config: MeshConfig) -> DepthView:
    """The view with the depth that is fused and baked: ``ground_prior_depth`` when ``area`` (the
    cameras' circle) is given, else the trusted depth."""
    if area is not None:
        depth = ground_prior_depth(view, area, config)
    else:
        depth = np.where(trusted_mask(view, config), view.depth, 0.0).astype(np.float32)
    return replace(view, depth=depth, opacity=None, surface_opacity=None)


def trusted_mask(view: DepthView, config: MeshConfig) -> np.ndarray:
    """Where the view's depth may be fused (step 1 of the module docstring)."""
    trusted = view.depth > 0
    if view.opacity is not None:
        trusted &= view.opacity >= config.min_accumulation
    if view.surface_opacity is not None:
        trusted &= view.surface_opacity >= config.min_surface_opacity
    return trusted


def fuse_tsdf(views: list[DepthView], region: Region, voxel_size: float, config: MeshConfig):
    """Integrate the depth views into a VoxelBlockGrid TSDF; returns a trimesh (uncleaned).

    Every view is integrated into every voxel block of the region (not only the blocks near its
    own surface, open3d's usual use), so a view that sees past a spot marks it as free space:
    a floater one view rendered is voted away by the views that look through it.
    """
    o3d = import_open3d()
    core = o3d.core
    trunc = config.truncation_voxels
    block = 16 * voxel_size
    low = np.floor(np.array([*(region.centre - region.radius), region.bottom]) / block)
    high = np.floor(np.array([*(region.centre + region.radius), region.top]) / block)
    axes = [np.arange(a, b + 1) for a, b in zip(low, high, strict=True)]
    blocks_np = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3).astype(np.int32)
    if len(blocks_np) > 200_000:
        raise MeshError(
            f"{len(blocks_np)} TSDF blocks for the region: lower --resolution (now "
            f"{config.resolution})"
        )
    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight"),
        attr_dtypes=(core.float32, core.float32),
        attr_channels=((1), (1)),
        voxel_size=voxel_size,
        block_resolution=16,
        block_count=len(blocks_np),
    )
    blocks = core.Tensor(blocks_np)
    grid.hashmap().activate(blocks)
    depth_max = float(
        max(np.linalg.norm(v.camera_to_world[:3, 3] - [*region.centre, 0]) for v in views)
        + 2 * region.radius
    )
    integrated = 0
    for view in views:
        fx, fy, cx, cy = view.intrinsics
        intrinsic = core.Tensor(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64))
        extrinsic = core.Tensor(np.linalg.inv(view.camera_to_world @ OPENGL_TO_OPENCV))
        depth = depth_inside_region(view, region, margin=trunc * voxel_size)
        if not depth.any():
            continue
        image = o3d.t.geometry.Image(core.Tensor(depth))
        grid.integrate(blocks, image, intrinsic, extrinsic, 1.0, depth_max, trunc)
        integrated += 1
    if integrated == 0:
        raise MeshError("the field rendered no trusted depth inside the arena region")
    try:
        mesh = grid.extract_triangle_mesh(weight_threshold=config.weight_threshold).to_legacy()
    except RuntimeError:  # open3d fails on a volume with no zero crossing
        mesh = None
    vertices = np.asarray(mesh.vertices) if mesh is not None else np.zeros((0, 3))
    faces = np.asarray(mesh.triangles) if mesh is not None else np.zeros((0, 3), int)
    if len(faces) == 0:
        raise MeshError("TSDF fusion produced no surface: the field rendered no trusted depth")
    return trimesh.Trimesh(vertices, faces, process=True)


def clean_mesh(mesh: trimesh.Trimesh, region: Region, config: MeshConfig) -> trimesh.Trimesh:
    """Crop to the region, drop floaters and small components, fill small holes, simplify."""
    centres = mesh.triangles_center
    inside = (
        (np.linalg.norm(centres[:, :2] - region.centre, axis=1) <= region.radius)
        & (centres[:, 2] >= region.bottom)
        & (centres[:, 2] <= region.top)
    )
    mesh = mesh.submesh([np.nonzero(inside)[0]], append=True) if inside.any() else None
    if mesh is None or len(mesh.faces) == 0:
        raise MeshError("no reconstructed surface inside the arena region")
    mesh = drop_small_components(mesh, config.min_component_fraction)
    mesh = fill_small_holes(mesh, config.hole_edges)
    if len(mesh.faces) > config.target_faces:
        # decimation can split off slivers: drop them again
        mesh = drop_small_components(
            simplify(mesh, config.target_faces), config.min_component_fraction
        )
    mesh.remove_unreferenced_vertices()
    return mesh


def drop_small_components(mesh: trimesh.Trimesh, min_fraction: float) -> trimesh.Trimesh:
    """Keep the connected components with at least ``min_fraction`` of the largest one's faces."""
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, len(mesh.faces))
    sizes = np.bincount(labels)
    keep = sizes >= min_fraction * sizes.max()
    if keep.all():
        return mesh
    return mesh.submesh([np.nonzero(keep[labels])[0]], append=True)


def fill_small_holes(mesh: trimesh.Trimesh, max_edges: int) -> trimesh.Trimesh:
    """Close every boundary loop of at most ``max_edges`` edges with a fan around its centroid."""
    # Boundary edges occur in one face only; keep them directed as they run in that face,
    # so the fan closing the hole gets the opposite winding and faces the same way as its rim.
    single = trimesh.grouping.group_rows(mesh.edges_sorted, require_count=1)
    if len(single) == 0:
        return mesh
    directed = mesh.edges[single]
    successor = {int(a): int(b) for a, b in directed}
    vertices = list(mesh.vertices)
    faces = [mesh.faces]
    seen: set[int] = set()
    for start in list(successor):
        if start in seen:
            continue
        loop, node = [], start
        while node not in seen and node in successor:
            seen.add(node)
            loop.append(node)
            node = successor[node]
        if node != start or not 3 <= len(loop) <= max_edges:
            continue
        centre_index = len(vertices)
        vertices.append(mesh.vertices[loop].mean(axis=0))
        fan = [[b, a, centre_index] for a, b in zip(loop, loop[1:] + loop[:1], strict=True)]
        faces.append(np.array(fan))
    if len(faces) == 1:
        return mesh
    return trimesh.Trimesh(np.array(vertices), np.concatenate(faces), process=False)


def simplify(mesh: trimesh.Trimesh, target_faces: int) -> trimesh.Trimesh:
    """Quadric decimation to about ``target_faces`` (open3d's implementation)."""
    o3d = import_open3d()
    legacy = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(mesh.vertices, np.float64)),
        o3d.utility.Vector3iVector(np.asarray(mesh.faces, np.int32)),
    )
    legacy = legacy.simplify_quadric_decimation(int(target_faces))
    return trimesh.Trimesh(np.asarray(legacy.vertices), np.asarray(legacy.triangles), process=True)


def bake_vertex_colours(
    mesh: trimesh.Trimesh, views: list[DepthView], depth_tolerance: float
) -> np.ndarray:
    """RGBA uint8 per vertex: the visibility- and angle-weighted mean of the views' colours.

    Vertices no view sees take the colour of the nearest seen vertex.
    """
    vertices = np.asarray(mesh.vertices)
    normals = np.asarray(mesh.vertex_normals)
    total = np.zeros((len(vertices), 3))
    weight = np.zeros(len(vertices))
    for view in views:
        width, height = view.size
        world_to_camera = np.linalg.inv(view.camera_to_world)
        local = vertices @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
        z = -local[:, 2]
        fx, fy, cx, cy = view.intrinsics
        with np.errstate(divide="ignore", invalid="ignore"):
            u = fx * local[:, 0] / z + cx
            v = -fy * local[:, 1] / z + cy
        ok = (z > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        index = np.nonzero(ok)[0]
        col, row = u[index].astype(int), v[index].astype(int)
        rendered = view.depth[row, col]
        visible = (rendered > 0) & (np.abs(rendered - z[index]) <= depth_tolerance)
        index, col, row = index[visible], col[visible], row[visible]
        to_camera = view.camera_to_world[:3, 3] - vertices[index]
        to_camera /= np.linalg.norm(to_camera, axis=1, keepdims=True)
        facing = np.abs(np.einsum("ij,ij->i", normals[index], to_camera))
        w = np.clip(facing, 0.05, 1.0) / z[index]
        np.add.at(total, index, view.rgb[row, col] * w[:, None])
        np.add.at(weight, index, w)
    seen = weight > 0
    colours = np.full((len(vertices), 3), 0.5)
    colours[seen] = total[seen] / weight[seen, None]
    if seen.any() and not seen.all():
        from scipy.spatial import cKDTree

        _, nearest = cKDTree(vertices[seen]).query(vertices[~seen])
        colours[~seen] = colours[seen][nearest]
    rgba = np.concatenate([colours, np.ones((len(vertices), 1))], axis=1)
    return np.clip(rgba * 255, 0, 255).astype(np.uint8)


def drivable_from_mesh(
    mesh: trimesh.Trimesh,
    region: Region,
    resolution: float,
    ground_tolerance: float,
    min_island_fraction: float = 0.05,
    stats: dict[str, Any] | None = None,
) -> DrivableMap:
    """The drivable map of ``mesh`` inside ``region`` (see step 5 of the module docstring).

    A cell is drivable when the first surface that rays cast straight down from above the region
    at its centre and its four corners meet is the ground. Anything above the ground blocks the
    cell, overhangs included: the conservative choice, since neither a TSDF surface (open under
    an object) nor an alpha shape (which may hold inner faces) says reliably whether a point is
    inside an object. The corners make an obstacle block every cell it reaches into: with the
    centre alone, 6 of the 99 cells under the bird's bulging side were drivable.
    ``stats``, when given, receives ``ground_level``: the median height of the ground found.
    """
    o3d = import_open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
        o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)),
    )
    cells = int(np.ceil(2 * region.radius / resolution))
    origin = region.centre - cells * resolution / 2
    blank = DrivableMap(np.zeros((cells, cells), bool), origin, resolution)
    xy = blank.cell_centres(*np.indices(blank.shape)).reshape(-1, 2)
    start = float(max(region.top, mesh.bounds[1, 2]) + 1.0)
    offsets = 0.5 * resolution * np.array([[0, 0], [-1, -1], [-1, 1], [1, -1], [1, 1]])
    samples = (xy[:, None] + offsets).reshape(-1, 2)
    rays = np.zeros((len(samples), 6), np.float32)
    rays[:, :2], rays[:, 2], rays[:, 5] = samples, start, -1.0
    top = start - scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().reshape(len(xy), -1)
    # The reconstructed ground may sit a few millimetres off z = 0 (the alignment's plane fit);
    # classify heights relative to the ground actually found, and report the offset.
    near_zero = np.abs(top[:, 0]) <= 3 * ground_tolerance
    level = float(np.median(top[near_zero, 0])) if near_zero.any() else 0.0
    ground = (np.abs(top - level) <= ground_tolerance).all(axis=1)
    ground &= np.linalg.norm(xy - region.centre, axis=1) <= region.radius
    obstacle = (np.isfinite(top) & (top > level + ground_tolerance)).any(axis=1)
    obstacle = obstacle.reshape(blank.shape)
    grid = ground.reshape(blank.shape)
    if stats is not None:
        stats["ground_level"] = level
    # Close one-cell gaps in the ground (noise), never across an obstacle.
    grid |= ndimage.binary_closing(grid, iterations=1) & ~obstacle
    labels, found = ndimage.label(grid)
    if found > 1:
        sizes = np.bincount(labels.ravel())[1:]
        grid = np.isin(labels, 1 + np.nonzero(sizes >= min_island_fraction * sizes.max())[0])
    return DrivableMap(grid, origin, resolution)


def extract_geometry(
    render_field,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    image_size: tuple[int, int],
    config: MeshConfig | None = None,
    progress: Progress | None = None,
) -> Geometry:
    """Collision mesh, coloured visual mesh and drivable map from a field (module docstring).

    ``poses`` (N, 4, 4) and ``intrinsics`` (N, 4) are the training cameras in the world frame
    (z up, ground z = 0) at full ``image_size`` (width, height); ``render_field`` offers the
    render API of contracts.md section 2.
    """
    config = config or MeshConfig()
    poses = np.asarray(poses, dtype=np.float64)
    if len(poses) == 0:
        raise MeshError("no camera poses to render depth from")
    region = arena_region(poses, config)
    stats: dict[str, Any] = {"config": asdict(config)}
    timer = time.perf_counter()
    views = render_depth_views(
        render_field, poses, intrinsics, image_size, region, config, progress
    )
    stats["render_s"] = time.perf_counter() - timer
    return geometry_from_views(views, poses, region, config, stats)


def render_depth_views(
    render_field,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    image_size: tuple[int, int],
    region: Region,
    config: MeshConfig,
    progress: Progress | None = None,
) -> list[DepthView]:
    """Step 1 of the module docstring: training views at ``render_scale``, then the rings."""
    pick = np.unique(
        np.linspace(0, len(poses) - 1, min(config.max_training_views, len(poses)))
        .round()
        .astype(int)
    )
    width = max(8, int(round(image_size[0] * config.render_scale)))
    height = max(8, int(round(image_size[1] * config.render_scale)))
    scaled = np.asarray(intrinsics, dtype=np.float64)[pick] * [
        width / image_size[0],
        height / image_size[1],
        width / image_size[0],
        height / image_size[1],
    ]
    views = render_views(
        render_field, poses[pick], scaled, width, height, config, progress, "training views"
    )
    orbit = float(np.linalg.norm(poses[:, :2, 3] - region.centre, axis=1).max())
    ring = virtual_poses(region, orbit, config)
    size = config.virtual_size
    focal = 0.5 * size / np.tan(np.radians(35))
    ring_intrinsics = np.tile([focal, focal, size / 2, size / 2], (len(ring), 1))
    views += render_views(
        render_field, ring, ring_intrinsics, size, size, config, progress, "ground views"
    )
    return views


def geometry_from_views(
    views: list[DepthView],
    poses: np.ndarray,
    region: Region,
    config: MeshConfig,
    stats: dict[str, Any] | None = None,
) -> Geometry:
    """Steps 2-5 of the module docstring on rendered ``views`` (``poses``: the training
    cameras, whose circle bounds the ground prior)."""
    stats = {"config": asdict(config)} if stats is None else stats
    stats["views"] = len(views)
    tolerance = config.ground_tolerance or 0.015 * region.radius
    timer = time.perf_counter()
    voxel = 2 * region.radius / config.resolution
    area = ground_area(poses) if config.ground_prior else None
    stats["ground_prior"] = area is not None  # off by config, or no circled area to apply it to
    views = [fusion_view(view, area, config) for view in views]
    fused = fuse_tsdf(views, region, voxel, config)
    stats["fuse_s"] = time.perf_counter() - timer
    stats["fused_faces"] = len(fused.faces)
    timer = time.perf_counter()
    collision = clean_mesh(fused, region, config)
    stats["clean_s"] = time.perf_counter() - timer
    stats["faces"] = len(collision.faces)
    timer = time.perf_counter()
    visual = collision.copy()
    visual.visual.vertex_colors = bake_vertex_colours(collision, views, depth_tolerance=3 * voxel)
    stats["bake_s"] = time.perf_counter() - timer
    timer = time.perf_counter()
    drivable = drivable_from_mesh(
        collision,
        region,
        resolution=config.map_resolution or region.radius / 100,
        ground_tolerance=tolerance,
        min_island_fraction=config.min_island_fraction,
        stats=stats,
    )
    stats["map_s"] = time.perf_counter() - timer
    stats["voxel_size"] = voxel
    return Geometry(collision, visual, drivable, region, stats)


def ground_plate(region: Region, area, cell: float) -> trimesh.Trimesh:
    """A plate at z = 0 over ``area`` (``ground_area``), gridded in ``cell`` squares so colours
    can vary across it."""
    steps = int(np.ceil(2 * region.radius / cell))
    axis = np.linspace(-region.radius, region.radius, steps + 1)
    gx, gy = np.meshgrid(axis + region.centre[0], axis + region.centre[1])
    ids = np.arange(gx.size).reshape(gx.shape)
    quads = np.stack([ids[:-1, :-1], ids[:-1, 1:], ids[1:, 1:], ids[1:, :-1]], -1).reshape(-1, 4)
    vertices = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], 1)
    quads = quads[area.find_simplex(vertices[quads].mean(axis=1)[:, :2]) >= 0]
    return trimesh.Trimesh(
        vertices, np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]]), process=True
    )


def convex_parts(
    mesh: trimesh.Trimesh, concavity: float = 0.05, max_parts: int = -1, seed: int = 0
) -> list[trimesh.Trimesh]:
    """Approximate convex decomposition (CoACD) of a closed mesh, for a part that must move.

    PyBullet simulates a moving body only as convex shapes; the static scene keeps its concave
    triangle mesh. ``concavity`` is CoACD's threshold (smaller: more, tighter parts);
    ``max_parts`` -1 leaves the count free. Needs the optional extra ``driveenv[coacd]``.
    """
    try:
        import coacd
    except ImportError:
        raise MeshError(
            "convex decomposition needs the optional extra: pip install 'driveenv[coacd]'"
        ) from None
    if not mesh.is_watertight:
        raise MeshError("convex decomposition needs a closed (watertight) mesh")
    coacd.set_log_level("error")
    parts = coacd.run_coacd(
        coacd.Mesh(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)),
        threshold=concavity,
        max_convex_hull=max_parts,
        seed=seed,
    )
    return [trimesh.Trimesh(vertices, faces, process=True) for vertices, faces in parts]


def pixel_directions(pose: np.ndarray, intrinsics, width: int, height: int) -> np.ndarray:
    """(H, W, 3) world directions through a camera's pixel centres, scaled so that the ray
    parameter is the z-depth (the field's ``camera_rays``, without distortion)."""
    import torch

    from scene_builder.fields.rays import camera_rays

    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + 0.5,
        torch.arange(width, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    to_tensor = lambda a: torch.as_tensor(np.asarray(a, np.float64))  # noqa: E731
    _, directions = camera_rays(to_tensor(pose), to_tensor(intrinsics), u.ravel(), v.ravel())
    return directions.numpy().reshape(height, width, 3)


def _camera_depth(caster, o3d, pose: np.ndarray, intrinsics, width: int, height: int):
    """Z-depth (H, W) of the ray-cast surface seen by one camera (0 where nothing is hit)."""
    directions = pixel_directions(pose, intrinsics, width, height)
    rays = np.concatenate([np.broadcast_to(pose[:3, 3], directions.shape), directions], -1)
    depth = caster.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))["t_hit"].numpy()
    return np.where(np.isfinite(depth), depth, 0).astype(np.float32)


def _alpha_shape(o3d, points: np.ndarray, alpha: float) -> trimesh.Trimesh:
    """The alpha shape of ``points`` (open3d): follows concave parts a convex hull would fill;
    the convex hull when the alpha shape comes out empty."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    try:
        shape = o3d.geometry.TriangleMesh.create_from_point_cloud_alpha_shape(cloud, alpha)
        mesh = trimesh.Trimesh(np.asarray(shape.vertices), np.asarray(shape.triangles))
    except RuntimeError:
        mesh = None
    if mesh is None or len(mesh.faces) == 0:
        return trimesh.convex.convex_hull(points)
    return mesh


def points_geometry(
    points: np.ndarray,
    poses: np.ndarray,
    intrinsics: np.ndarray,
    image_paths: list,
    image_size: tuple[int, int],
    config: MeshConfig | None = None,
    progress: Progress | None = None,
) -> Geometry:
    """Geometry from the sparse SfM points and the captured images, without a field.

    For when no field good enough to give depth could be trained (a field trained for minutes on
    a busy CPU renders the room as a far backdrop). The ground is a plate at z = 0 over the
    area the cameras circled (beyond it nothing was observed: not drivable); each cluster of
    points standing on it (DBSCAN, after statistical outlier removal) becomes the alpha shape of
    its points and the footprint of its lowest points (alpha 1.8 grid cells: on the bird, a
    median 5 mm from the reference points where a convex hull is 10 mm off); vertex colours come from the captured images
    with the same visibility-weighted bake as the field path. Coarser than the field path.
    """
    import cv2

    config = config or MeshConfig()
    o3d = import_open3d()
    poses = np.asarray(poses, dtype=np.float64)
    region = arena_region(poses, config)
    stats: dict[str, Any] = {"config": asdict(config), "source": "sparse points"}
    tick = time.perf_counter()
    tolerance = config.ground_tolerance or 0.015 * region.radius
    cell = 4 * region.radius / config.resolution
    camera_hull = ground_area(poses)
    if camera_hull is None:
        raise MeshError(
            "the cameras do not circle an area to lay the ground plate on; use --geometry field"
        )

    parts = [ground_plate(region, camera_hull, cell)]

    # Obstacles: clusters of points above the ground inside the circled area.
    above = points[
        (points[:, 2] > tolerance)
        & (points[:, 2] < region.top)
        & (camera_hull.find_simplex(points[:, :2]) >= 0)
    ]
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(above))
    if len(above) >= 20:
        cloud, _ = cloud.remove_statistical_outlier(nb_neighbors=20, std_ratio=2.0)
    kept = np.asarray(cloud.points)
    labels = np.asarray(cloud.cluster_dbscan(eps=1.5 * cell, min_points=10)) if len(kept) else []
    for label in range(int(np.max(labels)) + 1 if len(labels) else 0):
        member = kept[labels == label]
        if len(member) < 30:
            continue
        # a hull is only as good as its outermost points: drop the farthest 3%
        spread = np.linalg.norm(member - np.median(member, axis=0), axis=1)
        member = member[spread <= np.percentile(spread, 97)]
        # Stand it on the ground: the footprint of its lowest points (not of all of them, which
        # would turn the hull into a column as wide as the object's widest part).
        low = member[member[:, 2] <= member[:, 2].min() + 2 * cell]
        standing = np.concatenate([member, np.column_stack([low[:, :2], np.zeros(len(low))])])
        parts.append(_alpha_shape(o3d, standing, alpha=1.8 * cell))
    stats["obstacles"] = len(parts) - 1
    collision = trimesh.util.concatenate(parts)
    stats["faces"] = len(collision.faces)
    stats["fuse_s"] = time.perf_counter() - tick

    # Colours from the captured images, visibility by ray casting the new mesh.
    tick = time.perf_counter()
    caster = o3d.t.geometry.RaycastingScene()
    caster.add_triangles(
        o3d.core.Tensor(collision.vertices.astype(np.float32)),
        o3d.core.Tensor(collision.faces.astype(np.uint32)),
    )
    pick = np.unique(
        np.linspace(0, len(poses) - 1, min(config.max_training_views, len(poses))).round()
    ).astype(int)
    width = max(8, int(round(image_size[0] * config.render_scale)))
    height = max(8, int(round(image_size[1] * config.render_scale)))
    factor = np.array([width / image_size[0], height / image_size[1]] * 2)
    views = []
    for done, index in enumerate(pick, start=1):
        image = cv2.imread(str(image_paths[index]), cv2.IMREAD_COLOR)
        if image is None:
            raise MeshError(f"{image_paths[index]}: not a readable image")
        rgb = cv2.cvtColor(
            cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
        )
        intr = np.asarray(intrinsics[index], dtype=np.float64) * factor
        depth = _camera_depth(caster, o3d, poses[index], intr, width, height)
        views.append(DepthView(poses[index], intr, rgb.astype(np.float32) / 255, depth))
        if progress:
            progress(done, len(pick), "captured views")
    visual = collision.copy()
    visual.visual.vertex_colors = bake_vertex_colours(collision, views, depth_tolerance=cell)
    stats["bake_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    drivable = drivable_from_mesh(
        collision,
        region,
        resolution=config.map_resolution or region.radius / 100,
        ground_tolerance=tolerance,
        min_island_fraction=config.min_island_fraction,
        stats=stats,
    )
    stats["map_s"] = time.perf_counter() - tick
    stats["voxel_size"] = cell
    return Geometry(collision, visual, drivable, region, stats)
