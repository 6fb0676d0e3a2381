"""Checking a bundle's collision mesh before PyBullet opens it.

The SHA-256 table only says that a file is the one the bundle's author listed, not that it is a
mesh: an OBJ with a face index past its vertices makes PyBullet's loader crash the process
(segmentation fault), garbage makes it raise a bare ``pybullet.error``, and trimesh raises
IndexError or TypeError for the same files. The mesh is parsed once, when the bundle is loaded
(trimesh, about 0.1 s for the bird's 31,506 faces), and refused with one line naming the file;
``driveenv scene-info`` reads the visual mesh for its preview the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scene_builder.errors import BundleError


def load_checked_mesh(path: Path):
    """The ``trimesh.Trimesh`` at ``path``; ``BundleError`` naming it unless it is a triangle
    mesh with finite vertices and valid faces."""
    import trimesh

    try:
        mesh = trimesh.load(path, force="mesh", process=False)
        vertices = np.asarray(mesh.vertices, dtype=float)
        faces = np.asarray(mesh.faces)
    except Exception as error:  # trimesh raises many types for a malformed file
        text = str(error).splitlines()[0][:80] if str(error) else ""
        raise BundleError(
            f"{path}: not a readable triangle mesh ({type(error).__name__}: {text})"
        ) from None
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise BundleError(f"{path}: holds no triangles")
    if not np.isfinite(vertices).all():
        raise BundleError(f"{path}: has vertices that are not finite numbers")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise BundleError(
            f"{path}: a face refers to vertex {int(faces.max()) + 1} of {len(vertices)}"
        )
    return mesh
