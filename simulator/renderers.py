"""Camera renderers: the baked texture (``baked``), the vertex-coloured visual mesh (``mesh``),
the radiance field (``field``), or none.

Every renderer draws a batch of N cameras in one call: ``render(poses (N,4,4), lightings)``
returns float32 RGB (N,H,W,3) in [0, 1] and z-depth (N,H,W) in metres. The vector env calls it
once per step for all its sub-environments; that batching is the main speed lever. Lighting
follows ``scene_builder.lighting`` for both cameras (one table, one formula).

Mesh camera. ``scene_builder.raycast.MeshCaster`` casts all rays of all cameras in one call;
each hit's colour is the barycentric blend of its triangle's vertex colours, baked from the
field into the bundle's visual mesh. PyBullet's TinyRenderer is much slower at the same size and
its EGL renderer returns blank images without a GPU, which is why the mesh camera is not
PyBullet's (figures in benchmarks/RESULTS.md).

Baked camera. One ray cast against the bundle's texture-atlas mesh (the visual mesh plus a
background dome, ``scene_builder.texture_atlas``) gives each pixel's triangle and barycentric
coordinates; the texture is read there (bilinear) and the preset applied like the mesh
camera's. Only the scene's triangles are cast; a ray that misses
them meets the dome in closed form.
The atlas is baked by projective texturing from the training frames
(``scene_builder.bake_scene``), so it carries the capture's detail at mesh speed. The dome is a
miss for depth. A scene without a baked texture gets an atlas of its vertex colours, so the
baked camera then draws what the mesh camera draws.

Field camera. The same ray cast gives the z-depth of the surface along every ray; passed as
``surface_depth`` to ``RadianceField.render`` it lets the field place its few samples around
that surface instead of marching the whole ray (``field_mode="guided"``, the fast path).
Rays that miss the mesh (the room beyond a table-top arena, the sky and verges of a road) get
a band at ``BACKGROUND_DEPTH_FACTOR x max_depth``, which the field fills with the background it
learned there. That is cheap but loses what the field holds and the mesh lacks: on a road
scene, whose collision mesh is little more than the road, most of the view.
``field_mode="hybrid"`` marches the rays that miss the mesh freely and guides the rest;
``field_mode="free"`` marches every ray. Their costs and held-out scores on the shipped scenes
are in ``benchmarks/fidelity_bird.py``'s ``--field-modes`` table. Each call uses at most as
many torch threads as there are cores no other process is busy on (``common.threads``). Depth comes from the
field's own output (``max_depth`` where a ray misses the mesh or, marching freely, gathers
less than half opacity).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from common.threads import torch_threads
from scene_builder.raycast import Hits, MeshCaster
from simulator.errors import ConfigError
from simulator.lighting import EpisodeLighting, scene_lighting
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


class CameraCaster:
    """The simulator camera's rays cast against a mesh: z-depth and vertex colours per pixel."""

    def __init__(self, mesh_path, camera: CameraModel, max_depth: float) -> None:
        self.caster = MeshCaster.from_file(mesh_path, colours=True)
        self.camera = camera
        self.max_depth = float(max_depth)
        self._directions = camera.ray_directions()  # (P, 3), z = -1

    def cast(self, poses: np.ndarray) -> Hits:
        """Every pixel ray of N cameras: hits shaped (N, P); ``t_hit`` is the z-depth."""
        return self.caster.cast_cameras(poses, self._directions)

    def depth(self, hits: Hits) -> np.ndarray:
        """Z-depth (N,H,W) clipped to ``max_depth`` (misses are ``max_depth``)."""
        depth = np.minimum(hits.t_hit, self.max_depth)
        return depth.reshape(-1, self.camera.height, self.camera.width)

    def colours(self, hits: Hits) -> np.ndarray:
        """Capture-lit colours (N,H,W,3) of the hit points, ``SKY_COLOUR`` on a miss."""
        rgb = self.caster.colours(hits, SKY_COLOUR)
        return rgb.reshape(-1, self.camera.height, self.camera.width, 3)


class MeshRenderer(Renderer):
    """The baked visual mesh, each preset applied to its capture-lit colours."""

    name = "mesh"

    def __init__(self, scene, camera: CameraModel, max_depth: float) -> None:
        self.caster = CameraCaster(scene.visual_mesh_path, camera, max_depth)
        self.lighting = scene_lighting(scene)

    def render(self, poses, lightings):
        hits = self.caster.cast(poses)
        rgb = self.caster.colours(hits)
        for i, lighting in enumerate(lightings):
            rgb[i] = self.lighting.photometric(lighting.blend).apply(rgb[i])
        return rgb, self.caster.depth(hits)


class BakedRenderer(Renderer):
    """The bundle's baked texture atlas (vertex colours when the bundle has none).

    Per frame: the rays of all cameras in one matrix product (homogeneous camera-frame
    directions times each pose), one ray cast, one read of the atlas for faces and dome
    together, then each camera's preset (nothing to do for ``capture``)."""

    name = "baked"

    def __init__(self, scene, camera: CameraModel, max_depth: float) -> None:
        from scene_builder.texture_atlas import AtlasLookup, TextureAtlas, visual_mesh_atlas

        if getattr(scene, "baked_dir", None) is not None:
            atlas = TextureAtlas.load(scene.baked_dir)
        else:
            atlas = visual_mesh_atlas(scene.visual_mesh_path)
        # only the scene's faces are cast: the dome is met in closed form (AtlasLookup)
        self.caster = MeshCaster(atlas.vertices, atlas.faces[: atlas.scene_faces])
        self.lookup = AtlasLookup(atlas)
        self.camera = camera
        self.max_depth = float(max_depth)
        self.lighting = scene_lighting(scene)
        directions = camera.ray_directions()
        self._units = np.ascontiguousarray(
            (directions / np.linalg.norm(directions, axis=1)[:, None]).T
        )
        # (P, 4) homogeneous directions: [d, 1] @ [[R^T, 0], [0, t^T]] is the ray (origin, dir)
        self._homogeneous = np.concatenate([directions, np.ones((len(directions), 1))], axis=1)
        self._homogeneous = self._homogeneous.astype(np.float32)
        self._rays: np.ndarray | None = None

    def camera_rays(self, poses: np.ndarray) -> np.ndarray:
        """Rays (N, P, 6) float32 (origin, z-scaled direction) of N camera-to-world poses."""
        poses = np.asarray(poses, dtype=np.float32).reshape(-1, 4, 4)
        transforms = np.zeros((len(poses), 4, 6), np.float32)
        transforms[:, :3, 3:] = poses[:, :3, :3].transpose(0, 2, 1)
        transforms[:, 3, :3] = poses[:, :3, 3]
        shape = (len(poses), len(self._homogeneous), 6)
        if self._rays is None or self._rays.shape != shape:
            self._rays = np.empty(shape, np.float32)
        return np.matmul(self._homogeneous, transforms, out=self._rays)

    def render(self, poses, lightings):
        rays = self.camera_rays(poses)
        n = rays.shape[0]
        hits = self.caster.cast(rays)
        rgb = self.lookup.camera_colours(
            hits.hit.reshape(-1),
            hits.primitive_ids.reshape(-1),
            hits.primitive_uvs.reshape(-1, 2),
            np.asarray(poses, np.float32).reshape(-1, 4, 4),
            self._units,
            SKY_COLOUR,
        )
        shape = (n, self.camera.height, self.camera.width)
        rgb = rgb.reshape(*shape, 3)
        for i, lighting in enumerate(lightings):
            rgb[i] = self.lighting.photometric(lighting.blend).apply(rgb[i])
        return rgb, np.minimum(hits.t_hit.reshape(shape), np.float32(self.max_depth))


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
        self._threads = torch.get_num_threads()  # the most it uses; fewer while cores are busy
        self.field = scene.load_field()
        self.camera = camera
        self.max_depth = float(max_depth)
        self.mode = mode
        self.caster = (
            CameraCaster(scene.visual_mesh_path, camera, max_depth) if mode != "free" else None
        )
        self.lighting = scene_lighting(scene, self.field)

    def render(self, poses, lightings):
        torch = self._torch
        poses = np.asarray(poses, dtype=np.float32).reshape(-1, 4, 4)
        appearances = [self.lighting.appearance(lighting.blend) for lighting in lightings]
        codes = torch.from_numpy(np.stack([code for code, _ in appearances]))
        surface, missed = None, None
        if self.caster is not None:
            t_hit = self.caster.cast(poses).t_hit.reshape(-1, self.camera.height, self.camera.width)
            missed = ~np.isfinite(t_hit)
            # an infinite surface depth makes the field march that ray freely
            miss_depth = (
                np.inf if self.mode == "hybrid" else BACKGROUND_DEPTH_FACTOR * self.max_depth
            )
            surface = torch.from_numpy(np.where(missed, miss_depth, t_hit).astype(np.float32))
        with torch_threads(self._threads):  # no thread waiting on a core another process uses
            out = self.field.render(
                torch.from_numpy(poses),
                torch.from_numpy(self.camera.intrinsics),
                self.camera.width,
                self.camera.height,
                appearance=codes,
                surface_depth=surface,
            )
        rgb = out.rgb.numpy().astype(np.float32, copy=False)
        for i, (_, change) in enumerate(appearances):
            rgb[i] = change.apply(rgb[i])
        # A ray ends at the mesh surface where it hits it; marched freely (every ray in free
        # mode, the misses in hybrid mode), it saw nothing where it gathers less than half opacity.
        gathered = out.accumulation.numpy() > 0.5
        if missed is None:
            ended = gathered
        elif self.mode == "hybrid":
            ended = ~missed | gathered
        else:
            ended = ~missed
        depth = np.where(ended, np.minimum(out.depth.numpy(), self.max_depth), self.max_depth)
        return rgb, depth.astype(np.float32)


def make_renderer(kind: str, scene, camera: CameraModel, max_depth: float, field_mode: str):
    """The renderer named ``kind`` (``baked``, ``field``, ``mesh`` or ``none``) for ``scene``."""
    if kind == "baked":
        return BakedRenderer(scene, camera, max_depth)
    if kind == "mesh":
        return MeshRenderer(scene, camera, max_depth)
    if kind == "field":
        return FieldRenderer(scene, camera, max_depth, mode=field_mode)
    return NullRenderer()
