"""The one mesh ray caster: open3d's ``RaycastingScene`` (Embree on the CPU) over a triangle mesh.

Used by the simulator's cameras, the mesher (visibility, drivable map) and the preview. A cast
returns, per ray, the hit distance ``t`` (in units of the ray's direction: z-depth for the
z-scaled rays of ``scene_builder.camera``), the triangle id and the barycentric coordinates of
the hit, so a colour lookup (per-vertex colours here; a texture for a baked camera) costs one
gather per pixel.

Threads: ``cast_rays`` is always called with ``nthreads=0``, which runs on TBB's shared
(global) arena, sized to the CPUs this process may use. In open3d 0.20 any positive
``nthreads`` makes every call build its own arena, and memory grows by kilobytes per call and
the casts slow down over tens of thousands of calls (``benchmarks/raycast_memory.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.open3d_compat import import_open3d
from scene_builder.camera import camera_ray_batch
from scene_builder.errors import MeshError

SHARED_ARENA = 0  # cast_rays' nthreads: TBB's global arena (see the module docstring)


@dataclass
class Hits:
    """Per-ray results of a cast, all shaped like the rays' leading dimensions."""

    t_hit: np.ndarray  # float32, inf on a miss
    primitive_ids: np.ndarray  # uint32 triangle index (meaningless on a miss)
    primitive_uvs: np.ndarray  # (..., 2) barycentric (u, v): point = a + u (b - a) + v (c - a)

    @property
    def hit(self) -> np.ndarray:
        return np.isfinite(self.t_hit)

    def depth(self, miss: float = 0.0) -> np.ndarray:
        """``t_hit`` with misses set to ``miss``."""
        return np.where(self.hit, self.t_hit, np.float32(miss)).astype(np.float32)


def read_mesh(path: str | Path):
    """The triangle mesh (trimesh) in the file at ``path``; MeshError naming the file when it
    cannot be read or has no triangles."""
    import trimesh

    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except (OSError, ValueError, IndexError, KeyError) as error:
        raise MeshError(f"{path}: not a readable triangle mesh ({error})") from None
    if len(getattr(mesh, "faces", ())) == 0:
        raise MeshError(f"{path}: the mesh has no triangles")
    return mesh


def vertex_colours(mesh) -> np.ndarray:
    """(V, 3) float colours in [0, 1] of a trimesh's vertices; grey where it has none (the grey
    the mesh camera draws)."""
    rgba = getattr(mesh.visual, "vertex_colors", None)
    if rgba is None or len(rgba) != len(mesh.vertices):
        rgba = np.full((len(mesh.vertices), 4), 180, dtype=np.uint8)
    return np.asarray(rgba[:, :3], dtype=np.float32) / 255.0


class MeshCaster:
    """Ray casting against one triangle mesh, with optional per-vertex colours (RGB in [0, 1])."""

    def __init__(self, vertices, faces, vertex_colours: np.ndarray | None = None) -> None:
        self._o3d = import_open3d()
        self.vertices = np.asarray(vertices, dtype=np.float32)
        self.faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
        if len(self.faces) == 0:
            raise MeshError("the mesh to ray-cast has no triangles")
        self.scene = self._o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(
            self._o3d.core.Tensor(self.vertices),
            self._o3d.core.Tensor(self.faces.astype(np.uint32)),
        )
        self._face_terms = None
        if vertex_colours is not None:
            corners = np.asarray(vertex_colours, dtype=np.float32)[self.faces]  # (F, 3, RGB)
            self._face_terms = np.ascontiguousarray(
                np.stack(
                    [corners[:, 0], corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]],
                    axis=1,
                )
            )
        self._rays: np.ndarray | None = None  # reused between camera casts of the same size

    @classmethod
    def from_trimesh(cls, mesh, colours: bool = False) -> MeshCaster:
        """A caster over a trimesh, with its per-vertex colours when ``colours`` (grey when the
        mesh has none)."""
        return cls(mesh.vertices, mesh.faces, vertex_colours(mesh) if colours else None)

    @classmethod
    def from_file(cls, path: str | Path, colours: bool = False) -> MeshCaster:
        """A caster over the mesh file at ``path`` (OBJ, PLY, ...); MeshError naming it if it
        cannot be read or has no triangles."""
        return cls.from_trimesh(read_mesh(path), colours)

    def cast(self, rays: np.ndarray) -> Hits:
        """Cast rays (..., 6) (origin, direction); results shaped like the leading dimensions."""
        rays = np.ascontiguousarray(rays, dtype=np.float32)
        shape = rays.shape[:-1]
        result = self.scene.cast_rays(
            self._o3d.core.Tensor.from_numpy(rays.reshape(-1, 6)), nthreads=SHARED_ARENA
        )
        return Hits(
            result["t_hit"].numpy().reshape(shape),
            result["primitive_ids"].numpy().reshape(shape),
            result["primitive_uvs"].numpy().reshape(*shape, 2),
        )

    def cast_cameras(self, poses: np.ndarray, directions: np.ndarray) -> Hits:
        """Cast the camera-frame ``directions`` (P, 3) of N camera-to-world ``poses``: (N, P)."""
        self._rays = camera_ray_batch(poses, directions, out=self._rays)
        return self.cast(self._rays)

    def colours(self, hits: Hits, background) -> np.ndarray:
        """Interpolated vertex colours (..., 3) float32 at the hits; ``background`` on a miss.

        A hit at barycentric (u, v) of triangle (a, b, c) has colour a + u (b - a) + v (c - a);
        the three per-face terms are precomputed so the lookup is one gather and one product.
        """
        if self._face_terms is None:
            raise MeshError("this caster was built without vertex colours")
        hit = hits.hit.reshape(-1)
        ids = np.where(hit, hits.primitive_ids.reshape(-1), 0).astype(np.intp)
        terms = np.take(self._face_terms, ids, axis=0)  # (P, 3 terms, RGB)
        weights = np.ones((len(ids), 3), dtype=np.float32)
        weights[:, 1:] = hits.primitive_uvs.reshape(-1, 2)
        rgb = np.einsum("pk,pkc->pc", weights, terms)
        rgb[~hit] = np.asarray(background, dtype=np.float32)
        return rgb.reshape(*hits.t_hit.shape, 3)
