"""Radiance fields behind one render API (contracts.md section 2).

``load_field(FIELD_DIR)`` reads ``FIELD_DIR/field.json`` and returns a ``RadianceField`` of the
backend it names: ``embedded`` (ours, pure PyTorch, fast on a CPU; scene_builder.fields.embedded)
or ``nerfstudio`` (an imported nerfacto; scene_builder.fields.nerfstudio_backend, optional).
"""

from __future__ import annotations

from pathlib import Path

from scene_builder.errors import FieldError
from scene_builder.fields.base import (
    FIELD_FILE,
    PRESET_NAMES,
    RadianceField,
    RenderOutput,
    read_field_meta,
)

__all__ = ["FIELD_FILE", "PRESET_NAMES", "RadianceField", "RenderOutput", "load_field"]


def load_field(field_dir: str | Path) -> RadianceField:
    """Load a trained field written by ``driveenv train-field`` or ``driveenv import-field``."""
    root = Path(field_dir)
    meta = read_field_meta(root)
    backend = meta["backend"]
    if backend == "embedded":
        from scene_builder.fields.embedded import EmbeddedRadianceField

        return EmbeddedRadianceField.load(root, meta)
    if backend == "nerfstudio":
        from scene_builder.fields.nerfstudio_backend import NerfstudioRadianceField

        return NerfstudioRadianceField.load(root, meta)
    raise FieldError(
        f"{root / FIELD_FILE}: unknown backend {backend!r} (expected embedded or nerfstudio)"
    )
