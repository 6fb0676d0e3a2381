"""Fuzz: a malformed field.json (embedded backend) loads a field or is one FieldError line."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from scene_builder.errors import FieldError
from scene_builder.fields import FIELD_FILE, RadianceField, load_field
from scene_builder.fields.base import FIELD_FORMAT_VERSION
from scene_builder.fields.embedded import EmbeddedConfig, EmbeddedField
from scene_builder.fields.rays import SceneBounds
from tests.fuzz.strategies import FUZZ, check_one_line, mutated

TINY = EmbeddedConfig(
    resolution=8,
    initial_resolution=8,
    density_components=2,
    color_components=2,
    hidden_width=4,
    appearance_dim=2,
    proxy_resolution=8,
)


@pytest.fixture(scope="module")
def field_dir(tmp_path_factory):
    """A tiny untrained embedded field, written as ``driveenv train-field`` writes one."""
    root = tmp_path_factory.mktemp("fuzz-field")
    bounds = SceneBounds(center=(0.0, 0.0, 0.0), scale=1.0, bounded=True, near=0.01, far=10.0)
    model = EmbeddedField(TINY, bounds, num_codes=3)
    torch.save(model.state_dict(), root / "field.pt")
    meta = {
        "format_version": FIELD_FORMAT_VERSION,
        "backend": "embedded",
        "checkpoint": "field.pt",
        "num_codes": 3,
        "config": TINY.to_json(),
        "bounds": bounds.to_json(),
        "presets": {"capture": [0.0, 0.0], "dim": [0.5, -0.5]},
    }
    (root / FIELD_FILE).write_text(json.dumps(meta))
    load_field(root)  # the unmutated folder loads
    return root, meta


@FUZZ
@given(data=st.data())
def test_malformed_field_json_loads_or_fails_in_one_line(field_dir, data):
    root, meta = field_dir
    (root / FIELD_FILE).write_text(json.dumps(data.draw(mutated(meta))))
    try:
        field = load_field(root)
    except Exception as error:  # noqa: BLE001 - the property is about which exceptions
        check_one_line(error)
    else:
        assert isinstance(field, RadianceField)


BAD_VALUES = [  # (key path, value, what the message names); each once raised a torch error
    (("presets",), None, "'presets' must be an object"),
    (("config", "resolution"), -4, "config.resolution=-4"),
    (("config", "hidden_width"), "32", "config.hidden_width='32'"),
    (("config", "density_scale"), float("nan"), "config.density_scale=nan"),
    (("num_codes",), -2, "num_codes=-2"),
    (("presets", "dim"), [0.5], "preset 'dim' must be 2 finite numbers"),
    (("presets", "dim"), ["a", "b"], "preset 'dim'"),
    (("bounds", "far"), 0.0, "near < far"),
    (("bounds", "center"), [0, 0], "bounds.center"),
    (("checkpoint",), "../field.pt", "must name a file in the field folder"),
]


@pytest.mark.parametrize(("path", "value", "named"), BAD_VALUES, ids=lambda v: str(v)[:30])
def test_each_bad_value_is_named_in_one_line(field_dir, path, value, named):
    import copy

    root, meta = field_dir
    bad = copy.deepcopy(meta)
    parent = bad
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    (root / FIELD_FILE).write_text(json.dumps(bad))
    with pytest.raises(FieldError) as caught:
        load_field(root)
    assert named in str(caught.value) and "\n" not in str(caught.value)
    assert str(root / FIELD_FILE) in str(caught.value)
