"""The shipped road scenes: lund_street (a walk) and the dashcam clip (a drive).

Both were built by ``driveenv build-scene`` alone (assets/scenes/README.md). These checks fail
if a bundle stops loading, stops being a road a car fits on, or loses its recorded route; and,
on the dashcam, if the field camera stops showing what the road-only collision mesh misses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scene_builder import load_scene

SCENES = Path(__file__).resolve().parents[2] / "assets" / "scenes"


@pytest.mark.parametrize("name", ["street", "dashcam"])
def test_a_shipped_road_is_a_car_sized_drivable_route(name):
    scene = load_scene(SCENES / name)  # hashes checked
    extras = scene.extras
    assert extras["scene_kind"] == "road"
    assert (extras["vehicle_length"], extras["vehicle_width"]) == (4.5, 1.8)
    assert 1.2 < extras["camera_height"] < 2.0  # a windscreen or a hand, in metres
    route = np.asarray(extras["recorded_route"], dtype=float)
    length = np.linalg.norm(np.diff(route, axis=0), axis=1).sum()
    assert length > 30.0  # longer than six cars
    assert scene.drivable.is_drivable(route).mean() > 0.99
    assert len(scene.routes) >= 8


def test_the_hybrid_field_camera_shows_what_the_road_mesh_misses():
    """The dashcam's collision mesh is the road; trees, verges and sky are only in the field.

    Guided, the rays that miss the mesh see a far band of the field; hybrid marches them
    freely. On the held-out frames hybrid scores about 7 dB higher (benchmarks/field_modes.py).
    """
    from eval.fidelity import FidelityConfig, SimulatorView, measure_fidelity
    from scene_builder.datasets import load_dataset

    scene = load_scene(SCENES / "dashcam", verify_hashes=False)
    dataset = load_dataset(scene.dataset_dir)
    config = FidelityConfig(frames=2, width=48)
    psnr = {
        mode: measure_fidelity(SimulatorView(scene, "field", field_mode=mode), dataset,
                               ["capture"], config).preset_scores()["capture"]["psnr"]
        for mode in ("guided", "hybrid")
    }  # fmt: skip
    assert psnr["hybrid"] > psnr["guided"] + 3.0, psnr
