"""A baked texture atlas: the visual mesh plus a background dome, one RGB image, per-corner UVs.

Layout. Every mesh triangle gets half of a square cell of ``cell`` x ``cell`` texels (two
triangles per cell, one in each corner, as right isosceles triangles with legs of
``cell - 4`` texels). The two halves are kept two texels apart along the cell's diagonal and a
texel belongs to the half its centre lies in, so a bilinear lookup anywhere inside a triangle
reads only texels of that triangle: no colour bleeds across triangles or cells and no gutter
filling pass is needed. The packing is instant and needs no unwrapping: a chart unwrapper
(``xatlas``) keeps triangles' shapes and neighbours, but on a TSDF mesh of near-uniform
triangles that buys little and its unwrap costs far more than the bake.

Background. Rays that miss the scene's mesh see the room around it. A latitude-longitude dome
(a UV sphere of radius ``dome_radius`` around ``dome_centre``, its lower part flattened onto the
plane just under the ground and the mesh where that is nearer: a bowl) is appended after the
mesh's faces and given its own strip of the atlas, so the same projective bake fills it. The
baked camera casts only the mesh (faces below ``scene_faces``) and meets the dome in closed form
(``AtlasLookup.dome_colours``); the dome is a miss for depth.

Files: ``baked/mesh.npz`` (vertices, faces, face_uvs, scene_faces, dome; no pickled objects)
and ``baked/atlas.png`` (8-bit RGB). UVs are in texel units (x right, y down the image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from scene_builder.errors import BundleError

MESH_FILE = "mesh.npz"
ATLAS_FILE = "atlas.png"
DOME_SEGMENTS = (128, 96)  # the dome's longitude x latitude faceting


@dataclass
class TextureAtlas:
    """A textured triangle mesh: ``face_uvs`` (F, 3, 2) texel coordinates of each corner."""

    vertices: np.ndarray  # (V, 3) float32
    faces: np.ndarray  # (F, 3) int64
    face_uvs: np.ndarray  # (F, 3, 2) float32
    scene_faces: int  # faces [0, scene_faces) are the scene's mesh; the rest are the dome
    image: np.ndarray  # (H, W, 3) float32 RGB in [0, 1], capture-lit
    # the dome's centre (3), radius, floor z, and its strip's top row, width and height in texels
    dome: np.ndarray | None = None

    def save(self, folder: Path) -> list[Path]:
        """Write ``mesh.npz`` and ``atlas.png`` into ``folder``; return their paths."""
        folder.mkdir(parents=True, exist_ok=True)
        mesh_path, atlas_path = folder / MESH_FILE, folder / ATLAS_FILE
        with open(mesh_path, "wb") as stream:
            np.savez_compressed(
                stream,
                vertices=self.vertices.astype(np.float32),
                faces=self.faces.astype(np.int32),
                face_uvs=self.face_uvs.astype(np.float32),
                scene_faces=np.int64(self.scene_faces),
                **({} if self.dome is None else {"dome": np.asarray(self.dome, np.float64)}),
            )
        rgb8 = np.clip(self.image * 255 + 0.5, 0, 255).astype(np.uint8)
        if not cv2.imwrite(str(atlas_path), cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR)):
            raise BundleError(f"{atlas_path}: could not write the texture atlas")
        return [mesh_path, atlas_path]

    @classmethod
    def load(cls, folder: str | Path) -> TextureAtlas:
        """Read a baked folder; BundleError naming the file when it is missing or malformed."""
        folder = Path(folder)
        mesh_path, atlas_path = folder / MESH_FILE, folder / ATLAS_FILE
        try:
            with np.load(mesh_path, allow_pickle=False) as data:
                vertices = np.asarray(data["vertices"], dtype=np.float32)
                faces = np.asarray(data["faces"], dtype=np.int64)
                face_uvs = np.asarray(data["face_uvs"], dtype=np.float32)
                scene_faces = int(data["scene_faces"])
                dome = np.asarray(data["dome"], np.float64) if "dome" in data else None
        except (OSError, ValueError, KeyError) as error:
            raise BundleError(f"{mesh_path}: not a baked texture mesh ({error})") from None
        bgr = cv2.imread(str(atlas_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise BundleError(f"{atlas_path}: not a readable image")
        bad = _shape_problem(vertices, faces, face_uvs, scene_faces, bgr.shape)
        if dome is not None and dome.shape != (8,):
            bad = "dome must hold 8 numbers (centre, radius, floor, top, width, height)"
        if bad:
            raise BundleError(f"{mesh_path}: {bad}")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        return cls(vertices, faces, face_uvs, scene_faces, image, dome)


def _shape_problem(vertices, faces, face_uvs, scene_faces, image_shape) -> str:
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        return "vertices must be (V, 3)"
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        return "faces must be (F, 3) with F > 0"
    if faces.min() < 0 or faces.max() >= len(vertices):
        return "faces index vertices that do not exist"
    if face_uvs.shape != (len(faces), 3, 2):
        return "face_uvs must be (F, 3, 2)"
    if not 0 < scene_faces <= len(faces):
        return "scene_faces must be in [1, F]"
    height, width = image_shape[:2]
    if face_uvs.min() < 0 or face_uvs[..., 0].max() > width or face_uvs[..., 1].max() > height:
        return f"face_uvs fall outside the {width}x{height} atlas"
    return ""


@dataclass(frozen=True)
class AtlasLayout:
    """Where each triangle and the dome live in the atlas (see the module docstring)."""

    faces: int  # the scene mesh's triangle count
    cell: int  # texels per cell side
    columns: int  # cells per atlas row
    dome_size: tuple[int, int]  # (width, height) texels of the dome's strip, below the cells

    @classmethod
    def plan(cls, faces: int, cell: int = 8, dome_height: int = 256) -> AtlasLayout:
        if cell < 5:
            raise BundleError(f"texture cell of {cell} texels is too small (at least 5)")
        cells = math.ceil(faces / 2)
        columns = math.ceil(math.sqrt(cells))
        return cls(faces, cell, columns, (columns * cell, dome_height))

    @property
    def rows(self) -> int:
        return math.ceil(math.ceil(self.faces / 2) / self.columns)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the atlas image."""
        return self.columns * self.cell, self.rows * self.cell + self.dome_size[1]

    def face_uvs(self) -> np.ndarray:
        """(faces, 3, 2) texel coordinates of the scene triangles' corners."""
        index = np.arange(self.faces)
        cell = index // 2
        origin = np.stack([cell % self.columns, cell // self.columns], -1) * self.cell
        leg = self.cell - 4
        lower = np.array([[1, 1], [1 + leg, 1], [1, 1 + leg]], dtype=np.float32)
        upper = self.cell - lower
        corners = np.where((index % 2 == 0)[:, None, None], lower, upper)
        return (origin[:, None, :] + corners).astype(np.float32)

    def cell_texels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every texel of the cells: its atlas (x, y), owning face and barycentric (u, v) of its
        centre. Texels just outside their triangle (its gutter) get barycentrics outside [0, 1]:
        the linear extension of the triangle, so a bilinear read at the triangle's edge stays
        exact for colours that vary linearly across it."""
        width = self.columns * self.cell
        y, x = np.divmod(np.arange(self.rows * self.cell * width), width)
        local = np.stack([x % self.cell, y % self.cell], -1) + 0.5
        upper = local.sum(-1) >= self.cell
        cell = (y // self.cell) * self.columns + x // self.cell
        face = cell * 2 + upper
        keep = face < self.faces
        local = np.where(upper[:, None], self.cell - local, local)[keep]
        leg = self.cell - 4
        uv = (local - 1.0) / leg  # texels outside the triangle extend its plane linearly
        return np.stack([x[keep], y[keep]], -1), face[keep], uv.astype(np.float32)


def dome_mesh(centre, radius: float, layout: AtlasLayout, floor: float = 0.0):
    """A UV sphere (vertices, faces, face_uvs) mapped to the layout's dome strip: longitude
    along x, latitude from +90 deg (top row) to -90 deg (bottom row)."""
    n_lon, n_lat = DOME_SEGMENTS
    lon = np.linspace(-np.pi, np.pi, n_lon + 1)
    lat = np.linspace(np.pi / 2, -np.pi / 2, n_lat + 1)
    lat_g, lon_g = np.meshgrid(lat, lon, indexing="ij")
    directions = np.stack(
        [np.cos(lat_g) * np.cos(lon_g), np.cos(lat_g) * np.sin(lon_g), np.sin(lat_g)], -1
    )
    vertices = _bowl(centre, radius, directions, floor).reshape(-1, 3)
    width, height = layout.dome_size
    top = layout.rows * layout.cell
    uv = np.stack(
        [(lon_g + np.pi) / (2 * np.pi) * width, top + (np.pi / 2 - lat_g) / np.pi * height], -1
    ).reshape(-1, 2)
    ij = np.arange((n_lat + 1) * (n_lon + 1)).reshape(n_lat + 1, n_lon + 1)
    a, b, c, d = ij[:-1, :-1], ij[:-1, 1:], ij[1:, :-1], ij[1:, 1:]
    # outward-facing winding does not matter to the caster; keep (a, c, b) and (b, c, d)
    faces = np.concatenate(
        [np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)]
    )
    return vertices.astype(np.float32), faces, uv[faces].astype(np.float32)


def dome_texels(
    centre, radius: float, layout: AtlasLayout, floor: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Atlas (x, y) and world point of every texel of the dome strip."""
    width, height = layout.dome_size
    y, x = np.divmod(np.arange(width * height), width)
    lon = (x + 0.5) / width * 2 * np.pi - np.pi
    lat = np.pi / 2 - (y + 0.5) / height * np.pi
    directions = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)
    points = _bowl(centre, radius, directions, floor)
    return np.stack([x, y + layout.rows * layout.cell], -1), points


def _bowl(centre, radius: float, directions: np.ndarray, floor: float) -> np.ndarray:
    """Points of the dome along unit ``directions`` from ``centre``: the sphere, cut by the
    plane z = ``floor`` (just under the ground and the mesh, so the mesh always hides it) where
    a direction meets it first: the ground beyond the mesh, a table or a road, then stays in
    place as the camera moves instead of swimming with the sphere."""
    centre = np.asarray(centre, dtype=np.float64)
    reach = np.full(directions.shape[:-1], float(radius))
    height = centre[2] - floor
    if height > 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            to_ground = np.where(directions[..., 2] < 0, -height / directions[..., 2], np.inf)
        reach = np.minimum(reach, to_ground)
    return centre + reach[..., None] * directions


class AtlasLookup:
    """Texture colour at ray-cast hits: one gather of the hit face's UV terms, then a bilinear
    read of the atlas by ``cv2.remap`` (the lookup a baked camera makes per pixel).

    ``camera_colours``, the simulator camera's path, reads a 16-bit copy of the atlas: half the
    bytes of the float one (a cheaper read), to 1/65535, so its frames are the float lookup's
    to that precision; an 8-bit read would round each pixel to the atlas's 8-bit steps."""

    def __init__(self, atlas: TextureAtlas) -> None:
        uvs = atlas.face_uvs.astype(np.float32) - 0.5  # texel centres at integer coordinates
        # (6, F): corner a's (x, y), then b - a and c - a, one row per component
        terms = np.concatenate([uvs[:, 0], uvs[:, 1] - uvs[:, 0], uvs[:, 2] - uvs[:, 0]], axis=1)
        self._terms = np.ascontiguousarray(terms.T)
        self._image = np.ascontiguousarray(atlas.image, dtype=np.float32)
        self._image16 = np.clip(self._image * 65535 + 0.5, 0, 65535).astype(np.uint16)
        self.dome = None if atlas.dome is None else np.asarray(atlas.dome, np.float64)
        self._dome32 = None if atlas.dome is None else self.dome.astype(np.float32)

    def colours(self, face_ids: np.ndarray, barycentric: np.ndarray) -> np.ndarray:
        """(P, 3) colours for face ids (P,) and barycentric (u, v) (P, 2)."""
        return _read(self._image, *self._face_uv(face_ids, barycentric))

    def dome_colours(self, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """(P, 3) colours where rays (that missed the mesh) meet the dome, found in closed form
        (the sphere, or the floor where nearer) rather than by casting against its facets."""
        d = np.asarray(directions, np.float32)
        units = (d / np.sqrt(np.einsum("ij,ij->i", d, d))[:, None]).T
        return _read(self._image, *self._dome_uv(np.asarray(origins, np.float32).T, units))

    def camera_colours(self, hit, face_ids, barycentric, poses, units, background) -> np.ndarray:
        """Colours (N*P, 3) of N cameras' pixels, in one read of the atlas: the face texel where
        ``hit`` (N*P,), the dome where not (``background`` RGB when the atlas has no dome).
        ``poses`` (N, 4, 4) camera-to-world, ``units`` (3, P) the cameras' unit ray directions
        in the camera frame (fixed per pixel, so only a rotation per frame); face ids of misses
        may be anything."""
        x, y = self._face_uv(face_ids, barycentric)
        pixels = units.shape[1]
        missed = np.flatnonzero(~hit)
        if self.dome is not None and len(missed):
            if len(poses) == 1:
                per_camera = [missed]
            else:
                per_camera = np.split(
                    missed, np.searchsorted(missed, np.arange(1, len(poses)) * pixels)
                )
            for k, index in enumerate(per_camera):
                directions = poses[k, :3, :3] @ np.take(units, index - k * pixels, axis=1)
                x[index], y[index] = self._dome_uv(poses[k, :3, 3:], directions)
        rgb = np.multiply(_read(self._image16, x, y), np.float32(1 / 65535), dtype=np.float32)
        if self.dome is None:
            rgb[missed] = background
        return rgb

    def _face_uv(self, face_ids: np.ndarray, barycentric: np.ndarray):
        """Texel (x, y) of each hit: a + u (b - a) + v (c - a) of its face's corner UVs."""
        terms = np.take(self._terms, face_ids.astype(np.intp, copy=False), axis=1, mode="clip")
        u, v = barycentric[:, 0], barycentric[:, 1]
        x = terms[2] * u
        x += terms[0]
        x += terms[4] * v
        y = terms[3] * u
        y += terms[1]
        y += terms[5] * v
        return x, y

    def _dome_uv(self, origin: np.ndarray, directions: np.ndarray):
        """Texel (x, y) where rays from ``origin`` (3, 1) or (3, M) along unit ``directions``
        (3, M) meet the bowl: the sphere, or the floor where that is nearer."""
        cx, cy, cz, radius, floor, top, width, height = self._dome32
        o = origin - self._dome32[:3, None]
        if o.shape[1] == 1:  # one camera: its rays share the origin
            b, c = o[:, 0] @ directions, float(o[:, 0] @ o[:, 0])
        else:
            b, c = np.einsum("ij,ij->j", o, directions), np.einsum("ij,ij->j", o, o)
        t = np.sqrt(np.maximum(b * b - (c - radius * radius), 0.0)) - b
        with np.errstate(divide="ignore", invalid="ignore"):
            to_floor = (floor - cz - o[2]) / directions[2]
        # only a ray going down meets the floor
        to_floor[(directions[2] >= 0) | (to_floor <= 0)] = np.inf
        np.minimum(t, to_floor, out=t)
        p = directions * t
        p += o
        lon = np.arctan2(p[1], p[0])
        lat = np.arctan2(p[2], np.sqrt(p[0] * p[0] + p[1] * p[1]))
        x = (lon + np.float32(np.pi)) * np.float32(width / (2 * np.pi)) - np.float32(0.5)
        y = (np.float32(0.5) - lat * np.float32(1 / np.pi)) * height + (top - np.float32(0.5))
        return x, y


def _read(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear texels (P, 3) of ``image`` at continuous texel-index coordinates x, y (P,)."""
    if len(x) == 0:
        return np.zeros((0, 3), image.dtype)
    # cv2.remap wants maps under 32767 columns: one row per block of at most 4096 pixels
    rows = -(-len(x) // 4096)
    maps = []
    for coordinate in (x, y):
        if len(coordinate) == rows * 4096:  # a 64x64 camera, or a batch of them: no padding
            padded = np.ascontiguousarray(coordinate, dtype=np.float32)
        else:
            padded = np.zeros(rows * 4096, dtype=np.float32)
            padded[: len(coordinate)] = coordinate
        maps.append(padded.reshape(rows, 4096))
    rgb = cv2.remap(image, *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return rgb.reshape(-1, 3)[: len(x)]


def atlas_from_vertex_colours(vertices, faces, colours, cell: int = 8) -> TextureAtlas:
    """An atlas (no dome) whose texels interpolate per-vertex ``colours`` (V, 3) in [0, 1]: the
    baked camera of a scene that has no baked texture draws what the mesh camera draws."""
    faces = np.asarray(faces, dtype=np.int64)
    layout = AtlasLayout.plan(len(faces), cell, dome_height=0)
    xy, face, uv = layout.cell_texels()
    corners = np.asarray(colours, dtype=np.float32)[faces[face]]
    texel = corners[:, 0] + uv[:, :1] * (corners[:, 1] - corners[:, 0])
    texel += uv[:, 1:] * (corners[:, 2] - corners[:, 0])
    width, height = layout.size
    image = np.zeros((height, width, 3), np.float32)
    image[xy[:, 1], xy[:, 0]] = texel
    vertices = np.asarray(vertices, dtype=np.float32)
    return TextureAtlas(vertices, faces, layout.face_uvs(), len(faces), image.clip(0, 1))


def visual_mesh_atlas(path: str | Path) -> TextureAtlas:
    """``atlas_from_vertex_colours`` of a mesh file (grey where it has no vertex colours, as the
    mesh camera draws it); MeshError naming the file when it cannot be read."""
    from scene_builder.raycast import read_mesh, vertex_colours

    mesh = read_mesh(path)
    return atlas_from_vertex_colours(mesh.vertices, mesh.faces, vertex_colours(mesh))
