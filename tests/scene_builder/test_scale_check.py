"""A forward capture's path at one scale: lund's stored SfM model passes, the same model with a
stretch at a fifth of the scale (what COLMAP's global mapper once made of lund in CI) is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scene_builder.align import AlignConfig, align_dataset
from scene_builder.datasets import load_dataset
from scene_builder.errors import DatasetError
from scene_builder.geometry.ground import path_up
from scene_builder.gps import fit_scale, read_track
from scene_builder.scale_check import MAX_STRETCH_RATIO, check_gps_stretches

LUND_MODEL = Path(__file__).parent / "data" / "lund_half_sfm"


def shrink_stretch(model: Path, out: Path, count: int = 10, factor: float = 0.2) -> Path:
    """The COLMAP model with its first ``count`` cameras, and the points mostly seen by them,
    moved ``factor`` of the way towards the last of those cameras (the stretch's far end)."""
    import pycolmap

    reconstruction = pycolmap.Reconstruction(str(model))
    images = sorted(reconstruction.images.values(), key=lambda image: image.name)
    stretch = {image.image_id for image in images[:count]}
    anchor = np.array(images[count - 1].projection_center())
    for image in images[:count]:
        frame = reconstruction.frames[image.frame_id]
        centre = anchor + factor * (np.array(image.projection_center()) - anchor)
        rotation = frame.rig_from_world.rotation.matrix()
        frame.rig_from_world = pycolmap.Rigid3d(pycolmap.Rotation3d(rotation), -rotation @ centre)
    for point in reconstruction.points3D.values():
        seen = [element.image_id in stretch for element in point.track.elements]
        if 2 * sum(seen) > len(seen):
            point.xyz = anchor + factor * (np.array(point.xyz) - anchor)
    out.mkdir(parents=True)
    reconstruction.write_text(str(out))
    return out


@pytest.fixture(scope="module")
def lund_images(shared_data, tmp_path_factory):
    from scene_builder.capture import CaptureConfig, capture

    root = tmp_path_factory.mktemp("lund_scale")
    config = CaptureConfig(downscale=2.0, min_sharpness=0.0)
    return (
        capture(shared_data / "lund_street" / "images", root / "captured", config).root / "images"
    )


def _posed(model: Path, images: Path, out: Path) -> Path:
    from scene_builder.importers import import_poses

    return import_poses(model, out, images=images).root


def _ratio(stretches) -> float:
    values = [value for _, _, value in stretches]
    return max(values) / min(values)


def test_the_stored_lund_model_is_at_one_scale(lund_images, tmp_path):
    for scale in ("camera-height=1.6", "gps"):
        folder = _posed(LUND_MODEL, lund_images, tmp_path / scale)
        report = align_dataset(folder, AlignConfig.from_cli("auto", scale))
        heights = report.extras["height_stretches"]
        # the street is measured in several stretches, each at the walker's height
        assert len(heights) >= 3 and heights[0][0] == 0 and heights[-1][1] == 28
        assert _ratio(heights) < MAX_STRETCH_RATIO
        assert all(1.0 < height < 2.5 for _, _, height in heights)
    gps = report.extras["gps"]["stretch_scales"]
    assert len(gps) >= 2 and _ratio(gps) < MAX_STRETCH_RATIO


def test_a_stretch_at_a_fifth_of_the_scale_is_refused(lund_images, tmp_path):
    shrunk = shrink_stretch(LUND_MODEL, tmp_path / "shrunk")
    folder = _posed(shrunk, lund_images, tmp_path / "posed")
    before = (folder / "transforms.json").read_bytes()
    for scale in ("camera-height=1.6", "gps"):
        with pytest.raises(DatasetError, match="not at one scale") as error:
            align_dataset(folder, AlignConfig.from_cli("auto", scale))
        message = str(error.value)
        low = message.split("than over ")[1].split(" ")[0]  # "07.jpg-08.jpg"
        assert all(int(name[:2]) <= 10 for name in low.split("-"))  # inside the shrunk stretch
        assert "re-run the poses" in message and "\n" not in message
    assert (folder / "transforms.json").read_bytes() == before  # nothing half-written

    # the GPS measure on its own sees the same stretch
    dataset = load_dataset(folder)
    up = path_up(dataset.poses)
    track = read_track([frame.image_path for frame in dataset.frames], folder)
    fit = fit_scale(dataset.poses[:, :3, 3], up, track, folder)
    with pytest.raises(DatasetError, match="length per GPS metre is [3-9].[0-9]x larger"):
        check_gps_stretches(dataset, fit, up)


def test_a_path_without_points_or_with_too_few_is_not_judged(lund_images, tmp_path):
    from scene_builder.scale_check import check_height_stretches

    dataset = load_dataset(_posed(LUND_MODEL, lund_images, tmp_path / "posed"))
    up = path_up(dataset.poses)
    assert check_height_stretches(dataset, None, up) == []
    one = check_height_stretches(dataset, dataset.poses[:20, :3, 3] - 1.5 * up, up)
    assert len(one) == 1  # a single stretch: nothing to compare
