"""Fixtures of the simulator tests: one synthetic scene bundle for the whole session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_scene(tmp_path_factory) -> Path:
    """The synthetic table-top bundle (plate with cliffs, four boxes, no field)."""
    from scene_builder.synthetic import make_synthetic_scene

    return make_synthetic_scene(tmp_path_factory.mktemp("scenes") / "synthetic", seed=0)


@pytest.fixture(scope="session")
def scene(synthetic_scene):
    from scene_builder.bundle import load_scene

    return load_scene(synthetic_scene)


@pytest.fixture(scope="session")
def road_scene(tmp_path_factory) -> Path:
    """The synthetic street bundle (a curved two-lane road, parked cars, buildings, no field)."""
    from scene_builder.synthetic import make_synthetic_road

    return make_synthetic_road(tmp_path_factory.mktemp("scenes") / "road", seed=0)
