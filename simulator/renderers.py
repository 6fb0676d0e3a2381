"""Camera renderers: the baked visual mesh (``mesh``), the radiance field (``field``), or none.

Every renderer draws a batch of N cameras in one call: ``render(poses (N,4,4), lightings)``
returns float32 RGB (N,H,W,3) in [0, 1] and z-depth (N,H,W) in metres. The vector env calls it
once per step for all its sub-environments; that batching is the main speed lever.

Mesh camera. open3d's ``RaycastingScene`` (Embree on the CPU) casts all rays of all cameras in
one call; each hit's colour is the barycentric blend of its triangle's vertex colours, baked
from the field into the bundle's visual mesh. Measured on this 2-core machine it casts about
5-7 million rays/s, so a 64x64 camera costs well under a millisecond. PyBullet's TinyRenderer
draws the same mesh at 84x84 in about 14.5 ms, and its EGL renderer returns blank images without
a GPU, which is why the mesh camera is not PyBullet's. No library gives a per-vertex-colour
ray-cast image directly, hence the small colour lookup here.

Field camera. The same ray cast gives the z-depth of the surface along every ray; passed as
``surface_depth`` to ``RadianceField.render`` it lets the field place its few samples around
that surface instead of marching the whole ray (``field_mode="guided"``, the fast path).
Rays that miss the mesh (the room beyond a table-top arena: half the image from a low camera)
get a band at ``BACKGROUND_DEPTH_FACTOR x max_depth``, which the field fills with the background
it learned there. Measured on the shipped bird scene (60 % of pixels miss the table mesh),
marching those rays freely made the guided render 3x slower (7,000 vs 21,400 rays/s under
load) and slower than no guidance at all, for images that look the same.
``field_mode="free"`` marches every ray, for geometry the mesh lacks. Depth comes from the
field's own output (``max_depth`` where a ray misses the mesh or, marching freely, gathers
less than half opacity).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from simulator.errors import ConfigError
from simulator.lighting import EpisodeLighting
from simulator.sensors import CameraModel

SKY_COLOUR = np.array([0.62, 0.70, 0.80], dtype=np.float32)  # what rays that miss the mesh see
BACKGROUND_DEPTH_FACTOR = 2.0  # field camera: mesh misses sample the field at 2 x max_depth


class Renderer:
    """Base: draws N cameras at once."""

    name = ""

    def render(
        self, poses: np.ndarray, lightings: Sequence[EpisodeLighting]
    ) -> tuple[np.ndarray, np.ndarray]:
        """RGB (N,H,W,3) float32 in [0, 1] and z-depth (N,H,W) for camera-to-world ``poses``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the renderer holds."""


class NullRenderer(Renderer):
    """No camera (state-only observations): nothing to load, nothing to draw."""

    name = "none"

    def render(self, poses, lightings):
        raise ConfigError("this environment has no camera (renderer='none')")


class MeshCaster:
    """Ray casting against a triangle mesh with per-vertex colours (open3d RaycastingScene)."""

    def __init__(self, mesh_path, camera: CameraModel, max_depth: float) -> None:
        import trimesh

        from common.open3d_compat import import_open3d

        self._o3d = import_open3d()
        mesh = trimesh.load(mesh_path, force="mesh", process=False)
        if len(mesh.faces) == 0:
            raise ConfigError(f"{mesh_path}: the visual mesh has no triangles")
        colours = getattr(mesh.visual, "vertex_colors", None)
        if colours is None or len(colours) != len(mesh.vertices):
            colours = np.full((len(mesh.vertices), 4), 180, dtype=np.uint8)
        self.vertex_colours = np.asarray(colours[:, :3], dtype=np.float32) / 255.0
        self.faces = np.asarray(mesh.faces, dtype=np.int64)
        corners = self.vertex_colours[self.faces]  # (F, 3 corners, RGB)
        self._face_terms = np.ascontiguousarray(
            np.stack(
                [corners[:, 0], corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]], 1
            )
        )
        self.scene = self._o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(
            self._o3d.core.Tensor(np.asarray(mesh.vertices, dtype=np.float32)),
            self._o3d.core.Tensor(self.faces.astype(np.uint32)),
        )
        self.camera = camera
        self.max_depth = float(max_depth)
        self._directions = camera.ray_directions()  # (P, 3), z = -1
        # open3d's default (0) starts a thread per core of the host, not of this container:
        # on this 2-core machine that halved the speed of an 8-camera cast (3.8 vs 1.9 ms)
        self._threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0

    def cast(self, poses: np.ndarray) -> dict[str, np.ndarray]:
        """Cast every pixel ray of N cameras: t_hit = z-depth (N,P) (inf on a miss), ids, uvs."""
        poses = np.asarray(poses, dtype=np.float32).reshape(-1, 4, 4)
        n, p = len(poses), len(self._directions)
        rays = np.empty((n, p, 6), dtype=np.float32)
        rays[:, :, :3] = poses[:, None, :3, 3]
        np.matmul(self._directions[None], poses[:, :3, :3].transpose(0, 2, 1), out=rays[:, :, 3:])
        hits = self.scene.cast_rays(
            self._o3d.core.Tensor.from_numpy(rays.reshape(-1, 6)), nthreads=self._threads
        )
        return {
            "t_hit": hits["t_hit"].numpy().reshape(n, p),
            "primitive_ids": hits["primitive_ids"].numpy().reshape(n, p),
            "primitive_uvs": hits["primitive_uvs"].numpy().reshape(n, p, 2),
        }

    def depth(self, hits: dict[str, np.ndarray]) -> np.ndarray:
        """Z-depth (N,H,W) clipped to ``max_depth`` (misses are ``max_depth``)."""
        depth = np.minimum(hits["t_hit"], self.max_depth)
        return depth.reshape(-1, self.camera.height, self.camera.width)

    def colours(self, hits: dict[str, np.ndarray]) -> np.ndarray:
        """Capture-lit colours (N,H,W,3) of the hit points, ``SKY_COLOUR`` on a miss.

        A hit at barycentric (u, v) of triangle (a, b, c) has colour a + u (b - a) + v (c - a);
        the three per-face terms are precomputed so the lookup is one gather and one product.
        """
        hit = np.isfinite(hits["t_hit"].reshape(-1))
        ids = np.where(hit, hits["primitive_ids"].reshape(-1), 0).astype(np.intp)
        terms = np.take(self._face_terms, ids, axis=0)  # (P, 3 terms, RGB)
        weights = np.ones((len(ids), 3), dtype=np.float32)
        weights[:, 1:] = hits["primitive_uvs"].reshape(-1, 2)
        rgb = np.einsum("pk,pkc->pc", weights, terms)
        rgb[~hit] = SKY_COLOUR
        return rgb.reshape(-1, self.camera.height, self.camera.width, 3)


class MeshRenderer(Renderer):
    """The baked visual mesh; lighting presets approximated by gain/gamma."""

    name = "mesh"

    def __init__(self, scene, camera: CameraModel, max_depth: float) -> None:
        self.caster = MeshCaster(scene.visual_mesh_path, camera, max_depth)

    def render(self, poses, lightings):
        hits = self.caster.cast(poses)
        rgb = self.caster.colours(hits)
        for i, lighting in enumerate(lightings):
            rgb[i] = lighting.shade_mesh_colours(rgb[i])
        return rgb, self.caster.depth(hits)


class FieldRenderer(Renderer):
    """The scene's radiance field, guided by mesh depth (``guided``) or marching freely."""

    name = "field"

    def __init__(self, scene, camera: CameraModel, max_depth: float, mode: str = "guided"):
        if scene.field_dir is None:
            raise ConfigError(
                f"{scene.root}: renderer='field' needs a radiance field, and this scene has "
                "none (use renderer='mesh')"
            )
        import torch

        self._torch = torch
        self.field = scene.load_field()
        self.camera = camera
        self.max_depth = float(max_depth)
        self.mode = mode
        self.caster = (
            MeshCaster(scene.visual_mesh_path, camera, max_depth) if mode == "guided" else None
        )
        self.codes = {
            name: np.asarray(code.detach().cpu().numpy() if hasattr(code, "detach") else code)
            for name, code in self.field.lighting_presets.items()
        }

    def render(self, poses, lightings):
        torch = self._torch
        poses = np.asarray(poses, dtype=np.float32).reshape(-1, 4, 4)
        missing = {name for lt in lightings for name, _ in lt.blend} - set(self.codes)
        if missing:
            raise ConfigError(
                f"lighting preset(s) {sorted(missing)} are not in the field's presets "
                f"{sorted(self.codes)}"
            )
        codes = torch.from_numpy(np.stack([lt.code(self.codes) for lt in lightings]))
        surface, missed = None, None
        if self.caster is not None:
            t_hit = self.caster.cast(poses)["t_hit"].reshape(
                -1, self.camera.height, self.camera.width
            )
            missed = ~np.isfinite(t_hit)
            surface = torch.from_numpy(
                np.where(missed, BACKGROUND_DEPTH_FACTOR * self.max_depth, t_hit).astype(np.float32)
            )
        out = self.field.render(
            torch.from_numpy(poses),
            torch.from_numpy(self.camera.intrinsics),
            self.camera.width,
            self.camera.height,
            appearance=codes,
            surface_depth=surface,
        )
        rgb = out.rgb.numpy().astype(np.float32, copy=False)
        # Guided, a ray ends at the mesh surface or sees nothing in range; marching freely, a ray
        # that gathers less than half opacity saw nothing.
        ended = ~missed if missed is not None else out.accumulation.numpy() > 0.5
        depth = np.where(ended, np.minimum(out.depth.numpy(), self.max_depth), self.max_depth)
        return rgb, depth.astype(np.float32)


def make_renderer(kind: str, scene, camera: CameraModel, max_depth: float, field_mode: str):
    """The renderer named ``kind`` (``field``, ``mesh`` or ``none``) for ``scene``."""
    if kind == "mesh":
        return MeshRenderer(scene, camera, max_depth)
    if kind == "field":
        return FieldRenderer(scene, camera, max_depth, mode=field_mode)
    return NullRenderer()
