"""The embedded field's sky: a ray that leaves the field sees a colour that depends on its direction."""

from __future__ import annotations

from pathlib import Path

import torch

from scene_builder.fields import load_field
from scene_builder.fields.embedded import (
    EmbeddedConfig,
    EmbeddedField,
    RayGeometry,
    spherical_harmonics_2,
)
from scene_builder.fields.rays import SceneBounds

REPO = Path(__file__).resolve().parents[2]


def _fit_empty_rays(train_sky: bool) -> float:
    """Mean squared error after fitting rays that hit nothing to a sky bright above, dark below."""
    torch.manual_seed(0)
    bounds = SceneBounds((0.0, 0.0, 0.0), 1.0, False, 0.05, 100.0)
    model = EmbeddedField(EmbeddedConfig(resolution=16, initial_resolution=16), bounds, 2)
    directions = torch.nn.functional.normalize(torch.randn(512, 3), dim=-1)
    target = (0.15 + 0.7 * (directions[:, 2:] + 1) / 2).repeat(1, 3)
    target[:, 2] = 0.9 - 0.3 * directions[:, 0]  # bluer toward -x: the sky is not only vertical
    geometry = RayGeometry(
        weights=torch.zeros(512, 4),
        features=torch.zeros(512 * 4, model.feature_layer.in_features),
        view=spherical_harmonics_2(directions),
        t=torch.ones(512, 4),
    )
    codes = torch.zeros(512, model.codes.shape[1])
    parameters = [model.background, model.sky] if train_sky else [model.background]
    optimizer = torch.optim.Adam(parameters, lr=0.05)
    for _ in range(400):
        rgb, _, accumulation = model.shade(geometry, codes)
        loss = torch.nn.functional.mse_loss(rgb, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.all(accumulation == 0)
    return float(loss.detach())


def test_the_sky_fits_a_direction_dependent_background_a_constant_colour_cannot():
    with_sky, constant = _fit_empty_rays(True), _fit_empty_rays(False)
    assert with_sky < 5e-3 < 0.02 < constant


def test_a_field_saved_before_the_sky_loads_with_a_plain_background():
    field = load_field(REPO / "assets" / "scenes" / "bird" / "field")
    assert torch.count_nonzero(field.model.sky) == 0
