"""EnvConfig refuses a wrongly typed or non-finite value in any field with one ConfigError line."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest

from simulator.config import EnvConfig
from simulator.errors import ConfigError

WRONG = {  # annotation word -> values of the wrong type for it
    "int": [64.5, math.inf, "64", True, None],
    "float": [math.inf, -math.inf, math.nan, "1.0", False, None],
    "bool": ["yes", 1, None],
    "str": [3, 2.5, None],
}


def _kind(field) -> str | None:
    """The scalar kind a field is checked as (None: another annotation, checked elsewhere)."""
    words = {w.strip() for w in str(field.type).split("|")}
    return next((k for k in ("bool", "int", "float", "str") if k in words), None)


def _cases():
    for field in fields(EnvConfig):
        optional = "None" in str(field.type)
        for value in WRONG.get(_kind(field), []):
            if value is None and optional:
                continue
            if field.name == "scene" and isinstance(value, str):
                continue
            yield pytest.param(field.name, value, id=f"{field.name}={value!r}")


@pytest.mark.parametrize(("name", "value"), list(_cases()))
def test_every_field_refuses_a_wrong_type_with_one_line(name, value):
    with pytest.raises(ConfigError) as caught:
        EnvConfig(**{name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}=") and "\n" not in message


def test_the_issue_examples_name_the_field():
    with pytest.raises(ConfigError, match=r"image_size=64\.5: must be an integer"):
        EnvConfig(image_size=64.5)
    with pytest.raises(ConfigError, match="max_episode_steps=inf: must be an integer"):
        EnvConfig(max_episode_steps=math.inf)


def test_numpy_scalars_become_python_values():
    config = EnvConfig(image_size=np.int64(32), physics_dt=np.float32(0.05), camera_fov_deg=90)
    assert type(config.image_size) is int and config.image_size == 32
    assert type(config.physics_dt) is float
    assert EnvConfig.from_dict(config.to_dict()) == config
