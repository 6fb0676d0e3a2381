"""Cleaning a fused surface with trimesh (and open3d's quadric decimation, which trimesh only
offers through an extra package), and the convex decomposition of a part that must move."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import trimesh

from common.open3d_compat import import_open3d
from scene_builder.errors import MeshError
from scene_builder.geometry.types import Region

if TYPE_CHECKING:
    from scene_builder.mesh import MeshConfig


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
