"""Checking the values of an embedded field's field.json before a model is built from them.

A field folder is something users download and share, so every value that sizes a tensor or
enters arithmetic is checked first: integers where a grid or a layer is sized (at least 1),
finite numbers, scene bounds with a positive scale and ``near < far``, one appearance code per
preset of the configured length, and a checkpoint file inside the folder. Each problem is one
``FieldError`` line naming the file and the key; without these checks a wrong value surfaced
as a TypeError, RuntimeError or AttributeError from torch.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path, PurePosixPath
from typing import Any

from scene_builder.errors import FieldError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _checked_config(where: Path, data: Any, config_class: type) -> dict[str, Any]:
    """The known keys of ``data``, each of its field's type (ints >= 1, finite floats)."""
    if not isinstance(data, dict):
        raise FieldError(f"{where}: 'config' must be an object")
    known = {}
    for field in fields(config_class):
        if field.name not in data:
            continue
        value, kind = data[field.name], str(field.type)
        if kind == "int" and not (_is_int(value) and value >= 1):
            raise FieldError(f"{where}: config.{field.name}={value!r} must be an integer >= 1")
        if kind == "float" and not _is_number(value):
            raise FieldError(f"{where}: config.{field.name}={value!r} must be a finite number")
        if kind == "str" and not isinstance(value, str):
            raise FieldError(f"{where}: config.{field.name}={value!r} must be a string")
        known[field.name] = value
    return known


def _checked_bounds(where: Path, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise FieldError(f"{where}: 'bounds' must be an object")
    center = data.get("center")
    if not (isinstance(center, list) and len(center) == 3 and all(map(_is_number, center))):
        raise FieldError(f"{where}: bounds.center={center!r} must be 3 finite numbers")
    for key in ("scale", "near", "far"):
        if not _is_number(data.get(key)):
            raise FieldError(f"{where}: bounds.{key}={data.get(key)!r} must be a finite number")
    if not data["scale"] > 0 or not 0 <= data["near"] < data["far"]:
        raise FieldError(f"{where}: bounds need scale > 0 and 0 <= near < far")
    if not isinstance(data.get("bounded"), bool):
        raise FieldError(f"{where}: bounds.bounded={data.get('bounded')!r} must be true or false")
    return data


def _checked_presets(where: Path, data: Any, length: int) -> dict[str, list[float]]:
    if not isinstance(data, dict):
        raise FieldError(f"{where}: 'presets' must be an object of appearance codes")
    for name, code in data.items():
        if not (isinstance(code, list) and len(code) == length and all(map(_is_number, code))):
            raise FieldError(
                f"{where}: preset {name!r} must be {length} finite numbers (appearance_dim)"
            )
    return data


def checked_meta(where: Path, meta: dict[str, Any], config_class: type) -> dict[str, Any]:
    """config (known keys), bounds, checkpoint (a file name inside the folder), num_codes and
    presets of an embedded field.json, each checked; ``FieldError`` on the first problem."""
    for key in ("config", "bounds", "checkpoint", "num_codes"):
        if key not in meta:
            raise FieldError(f"{where}: incomplete embedded field description (no {key!r})")
    config = _checked_config(where, meta["config"], config_class)
    length = config.get("appearance_dim", config_class().appearance_dim)
    checkpoint = meta["checkpoint"]
    parts = PurePosixPath(checkpoint).parts if isinstance(checkpoint, str) else ()
    if not parts or ".." in parts or PurePosixPath(checkpoint).is_absolute() or "\\" in checkpoint:
        raise FieldError(f"{where}: checkpoint={checkpoint!r} must name a file in the field folder")
    if not (_is_int(meta["num_codes"]) and meta["num_codes"] >= 1):
        raise FieldError(f"{where}: num_codes={meta['num_codes']!r} must be an integer >= 1")
    return {
        "config": config,
        "bounds": _checked_bounds(where, meta["bounds"]),
        "checkpoint": checkpoint,
        "num_codes": meta["num_codes"],
        "presets": _checked_presets(where, meta.get("presets", {}), length),
    }
