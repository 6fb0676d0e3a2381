"""Benchmark: lund_street's metric size from the camera height and from GPS, over SfM runs.

Structure from motion on lund_street's 29-photo walk is not repeatable, and a scale taken from
the camera height (``--scale camera-height=1.6``) inherits each run's error in the depth of the
ground below the cameras. ``--scale gps`` fits the scale to the photos' EXIF GPS instead. For the
stored model (tests/scene_builder/data/lund_half_sfm) and ``--runs`` fresh SfM runs at half size
(512 x 384, ``SfmConfig(seed=k)``, what build-scene runs), one row each: the mapper, the SfM
seconds, the solved focal length, the street's length end to end (first photo to the last fresh
GPS fix, horizontally) with either scale beside the GPS distance itself, the GPS fit residual,
and the scale check: the largest ratio between two stretches' camera heights and between two
stretches' GPS scales (``scale_check``; over 2 is refused), or the check's refusal.

Fresh runs are kept in ``--work`` (a run folder with poses is reused, its SfM figures read from
its dataset), so an interrupted benchmark resumes.

    .venv/bin/python benchmarks/scale_street.py --runs 9 --work runs/bench-scale-street
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
from results import load, markdown_table, tee, write_section
from sfm_bird import DATA

from common.errors import DriveEnvError
from scene_builder.align import AlignConfig, align_dataset
from scene_builder.capture import CaptureConfig, capture
from scene_builder.datasets import load_dataset
from scene_builder.gps import read_track
from scene_builder.importers import import_poses
from scene_builder.sfm import SfmConfig, recover_poses

ROOT = Path(__file__).resolve().parent.parent
STORED = ROOT / "tests" / "scene_builder" / "data" / "lund_half_sfm"
CAMERA_HEIGHT = 1.6


def street(folder: Path, scale: str, work: Path) -> dict:
    """Align a copy of ``folder`` with ``scale``: the street end to end and the checks."""
    copy = work / f"aligned-{scale.split('=')[0]}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(folder, copy)
    try:
        report = align_dataset(copy, AlignConfig.from_cli("auto", scale))
    except DriveEnvError as error:
        return {"refused": str(error).split(": ", 2)[-1].split(" (")[0]}
    dataset = load_dataset(copy)
    track = read_track([frame.image_path for frame in dataset.frames], copy)
    first, last = track.indices[0], track.indices[-1]
    centres = dataset.poses[:, :2, 3]
    heights = [h for _, _, h in report.extras.get("height_stretches", [])]
    gps = report.extras.get("gps", {}).get("stretch_scales", [])
    return {
        "length": float(np.linalg.norm(centres[last] - centres[first])),
        "gps_length": float(np.linalg.norm(track.east_north[-1] - track.east_north[0])),
        "camera_height": report.camera_height,
        "residual": report.extras.get("gps", {}).get("residual_m"),
        "height_ratio": max(heights) / min(heights) if len(heights) > 1 else None,
        "gps_ratio": max(s for *_, s in gps) / min(s for *_, s in gps) if len(gps) > 1 else None,
    }


def _ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def row(name: str, folder: Path, work: Path) -> list[object]:
    """One table row: both scales' street lengths, the GPS fit and the scale check."""
    dataset = load_dataset(folder)
    sfm = dataset.extras.get("sfm", {})
    seconds = round(sum(sfm["seconds"].values()), 1) if sfm else "-"
    height = street(folder, f"camera-height={CAMERA_HEIGHT}", work)
    gps = street(folder, "gps", work)
    refused = height.get("refused") or gps.get("refused")
    check = (
        f"refused: {refused}"
        if refused
        else f"passed ({_ratio(height['height_ratio'])} / {_ratio(gps['gps_ratio'])})"
    )
    return [
        name,
        sfm.get("mapper", "-"),
        seconds,
        round(dataset.camera.fx),
        round(height["length"], 1) if "length" in height else "-",
        round(gps["length"], 1) if "length" in gps else "-",
        round(gps["gps_length"], 1) if "length" in gps else "-",
        round(gps["camera_height"], 2) if "length" in gps else "-",
        round(gps["residual"], 1) if "length" in gps else "-",
        check,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=4, help="fresh SfM runs of lund at half size")
    parser.add_argument("--work", type=Path, help="keep the runs here (default: a temp folder)")
    args = parser.parse_args()
    load_at_start = load()
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        captured = work / "captured"
        config = CaptureConfig(downscale=2.0, min_sharpness=0.0)
        capture(DATA / "lund_street" / "images", captured, config)
        stored = work / "stored"
        if not (stored / "transforms.json").is_file():
            import_poses(STORED, stored, images=captured / "images", overwrite=True)
        rows = [row("stored model", stored, work)]
        for seed in range(args.runs):
            folder = work / f"run{seed}"
            if not (folder / "transforms.json").is_file():
                shutil.rmtree(folder, ignore_errors=True)
                shutil.copytree(captured, folder)
                recover_poses(folder, SfmConfig(seed=seed), overwrite=True)
            rows.append(row(f"SfM run, seed {seed}", folder, work))
    header = [
        "lund_street poses",
        "mapper",
        "SfM s",
        "focal px",
        f"street m, camera-height={CAMERA_HEIGHT}",
        "street m, --scale gps",
        "street m, GPS",
        "camera height m (GPS)",
        "GPS residual m",
        "scale check (height / GPS stretch ratio)",
    ]
    with tee() as printed:
        print(markdown_table(header, rows))
        print(
            "\nstreet: the first photo to the last fresh GPS fix (photo 27; 28 and 29 repeat its "
            "fix), horizontal distance. SfM s: features + matching + mapping, read from each "
            "run's dataset, on the 2 shared cores. focal px: the solved focal length (the photos' EXIF "
            "gives about 518 px at this size; sfm warns when it moves far from it). Stretch "
            "ratio '-': fewer than two stretches to compare. The GPS stretches are compared "
            "only under --scale gps: a refused row's camera-height street passed its own check."
        )
    write_section("scale_street", printed.getvalue(), load_at_start=load_at_start)


if __name__ == "__main__":
    main()
