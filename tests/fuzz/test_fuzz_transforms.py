"""Fuzz: malformed transforms.json either loads into a valid dataset or is one DatasetError line,
and ``import-poses`` from it writes everything or nothing."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scene_builder.datasets import PosedDataset, check_camera, load_dataset, save_dataset
from scene_builder.importers import import_poses, read_llff
from tests.fuzz.strategies import FUZZ, check_one_line, mutated

SCALE = 1 / 16


@pytest.fixture(scope="module")
def base(shared_data, tmp_path_factory):
    """Two bird frames at 1/16 size with their real cameras and poses; the transforms.json."""
    bird = shared_data / "bird_capture"
    frames, _ = read_llff(bird / "poses_bounds.npy", bird / "images")
    root = tmp_path_factory.mktemp("fuzz-transforms")
    (root / "images").mkdir()
    small = []
    for frame in frames[:2]:
        image = cv2.imread(str(frame.image_path))
        size = (round(image.shape[1] * SCALE), round(image.shape[0] * SCALE))
        target = root / "images" / frame.image_path.name
        cv2.imwrite(str(target), cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        small.append(type(frame)(target, frame.camera.scaled(SCALE), frame.camera_to_world))
    path = save_dataset(PosedDataset(root, small, extras={"note": "fuzz"}))
    return root, json.loads(path.read_text())


def _check_dataset(dataset: PosedDataset) -> None:
    for index, frame in enumerate(dataset.frames):
        check_camera(frame.camera, f"frame {index}")  # raises if an invalid camera got through
        assert frame.camera_to_world.shape == (4, 4)
        assert np.all(np.isfinite(frame.camera_to_world))
    assert np.all(np.isfinite(dataset.world_from_source))


@FUZZ
@given(data=st.data())
def test_malformed_transforms_load_or_fail_in_one_line(base, data):
    root, meta = base
    case = root / "case.json"  # beside images/, so file paths resolve as in the real file
    case.write_text(json.dumps(data.draw(mutated(meta))))
    try:
        dataset = load_dataset(case)
    except Exception as error:  # noqa: BLE001 - the property is about which exceptions
        check_one_line(error)
    else:
        _check_dataset(dataset)


@FUZZ
@given(data=st.data())
def test_import_poses_writes_all_or_nothing(base, data):
    root, meta = base
    case = root / "import.json"
    case.write_text(json.dumps(data.draw(mutated(meta))))
    out = Path(tempfile.mkdtemp(prefix="fuzz-import-")) / "dataset"
    try:
        dataset = import_poses(case, out)
    except Exception as error:  # noqa: BLE001
        check_one_line(error)
        assert not out.exists(), f"{out} left behind"
    else:
        _check_dataset(dataset)
        assert load_dataset(out).poses.shape == dataset.poses.shape
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
