"""Named lighting presets and the one photometric formula every camera applies.

A preset is a global photometric change of an image lit as captured::

    rgb -> clip(gain * rgb, 0, 1) ** gamma        (per-channel gain, one gamma)

Every camera realises a preset by applying this formula to its capture-lit image: the radiance
field to its rendering with the ``capture`` appearance code, the mesh camera to its baked
colours, and likewise the preview and the report. So "dim" is the same change of light under
each camera, and a field needs no code for a preset (the one rule: no preset is ever missing
from a field that has a ``capture`` code). The field trainer's lighting augmentation uses the
same formula, so the appearance code space learns such changes.

A scene's presets are defined by ``resolve_presets``: the table the scene's field was trained
with (field.json ``preset_photometric``) wins over the bundle's own table, since that is the
light the field's preset codes were fitted to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scene_builder.errors import FieldError

CAPTURE = "capture"
_DARKEST = 1e-6  # keeps 0 ** gamma and its gradient finite


def apply_photometric(rgb, gain, gamma):
    """``clip(gain * rgb, 0, 1) ** gamma`` for numpy arrays or torch tensors, broadcasting."""
    return (rgb * gain).clip(_DARKEST, 1.0) ** gamma


@dataclass(frozen=True)
class LightingPreset:
    """A named photometric change: per-channel ``gain`` (exposure x white balance), ``gamma``."""

    name: str
    gain: np.ndarray  # (3,)
    gamma: float

    @property
    def is_identity(self) -> bool:
        return self.gamma == 1.0 and bool(np.all(np.asarray(self.gain) == 1.0))

    def apply(self, rgb):
        """Capture-lit colours (..., 3) in [0, 1] (numpy or torch) under this preset (the
        identity, ``capture``, returns its input)."""
        if self.is_identity:
            return rgb
        if hasattr(rgb, "new_tensor"):  # torch: keep the tensor type and device
            return apply_photometric(rgb, rgb.new_tensor(np.asarray(self.gain)), self.gamma)
        rgb = np.asarray(rgb, dtype=np.float32)
        return apply_photometric(rgb, np.asarray(self.gain, np.float32), np.float32(self.gamma))

    def to_json(self) -> dict[str, Any]:
        return {"gain": [float(g) for g in self.gain], "gamma": float(self.gamma)}


def preset(name: str, gain: Sequence[float], gamma: float) -> LightingPreset:
    return LightingPreset(name, np.asarray(gain, dtype=np.float64), float(gamma))


# The named presets every new field is fitted to and every new bundle lists.
PRESETS: dict[str, LightingPreset] = {
    p.name: p
    for p in (
        preset(CAPTURE, (1.0, 1.0, 1.0), 1.0),
        preset("bright", (1.5, 1.5, 1.5), 0.9),
        preset("dim", (0.55, 0.55, 0.55), 1.0),
        preset("warm", (1.15, 1.0, 0.75), 1.0),
        preset("night", (0.3, 0.33, 0.45), 1.2),
    )
}
PRESET_NAMES = tuple(PRESETS)


def presets_from_json(table: Mapping[str, Any]) -> dict[str, LightingPreset]:
    """``{name: {"gain": [r, g, b], "gamma": g}}`` -> presets (entries that do not parse are left
    out: the bundle loader reports a bad bundle table; a field's table is advisory)."""
    presets = {}
    for name, entry in table.items():
        try:
            gain = np.asarray(entry["gain"], dtype=np.float64).reshape(3)
            gamma = float(entry["gamma"])
        except (KeyError, TypeError, ValueError):
            continue
        if np.isfinite(gain).all() and (gain >= 0).all() and np.isfinite(gamma) and gamma > 0:
            presets[name] = LightingPreset(name, gain, gamma)
    return presets


def resolve_presets(
    scene_lighting: Mapping[str, LightingPreset], field_meta: Mapping[str, Any] | None = None
) -> dict[str, LightingPreset]:
    """The scene's presets (the bundle's names), each defined by the change the field's code for
    it was fitted to (field.json ``preset_photometric``) where the field records one, else by the
    bundle's table."""
    fitted = presets_from_json((field_meta or {}).get("preset_photometric") or {})
    return {name: fitted.get(name, entry) for name, entry in scene_lighting.items()}


def blend_presets(
    presets: Mapping[str, LightingPreset], blend: Sequence[tuple[str, float]]
) -> LightingPreset:
    """The weighted mean of the named presets' gain and gamma (weights sum to 1)."""
    if len(blend) == 1:
        return presets[blend[0][0]]
    gain = sum(weight * np.asarray(presets[name].gain, np.float64) for name, weight in blend)
    gamma = sum(weight * presets[name].gamma for name, weight in blend)
    name = "+".join(name for name, _ in blend)
    return LightingPreset(name, np.asarray(gain), float(gamma))


@dataclass
class SceneLighting:
    """How one scene's presets are realised: ``presets`` (the formula's parameters) and the
    field's ``capture`` appearance code (None for a scene rendered without its field)."""

    presets: dict[str, LightingPreset]
    capture_code: np.ndarray | None = None

    def photometric(self, blend: Sequence[tuple[str, float]]) -> LightingPreset:
        """The change a camera applies to its capture-lit image for ``blend`` ((name, weight)
        pairs)."""
        return blend_presets(self.presets, blend)

    def appearance(self, blend: Sequence[tuple[str, float]]) -> tuple[np.ndarray, LightingPreset]:
        """What the field renders for ``blend``: the capture code, then the change to apply."""
        if self.capture_code is None:
            raise FieldError(f"the field has no {CAPTURE!r} appearance code")
        return self.capture_code, self.photometric(blend)


def scene_lighting(scene, field=None) -> SceneLighting:
    """A scene bundle's presets (``resolve_presets``) with the capture code of ``field`` (a
    loaded RadianceField of the scene) when given; without it the field's table is read from
    its field.json (the bundle's table alone when that cannot be read)."""
    from scene_builder.fields.base import read_field_meta

    meta = field.meta if field is not None else None
    if meta is None and scene.field_dir is not None:
        try:
            meta = read_field_meta(scene.field_dir)
        except FieldError:  # an unreadable field does not stop the cameras that do not use it
            meta = None
    code = None
    if field is not None and CAPTURE in field.lighting_presets:
        code = field.lighting_presets[CAPTURE]
        code = np.asarray(code.detach().cpu().numpy() if hasattr(code, "detach") else code)
    return SceneLighting(resolve_presets(scene.lighting, meta), code)
