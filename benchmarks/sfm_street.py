"""Benchmark: pose recovery on the forward captures (lund_street, the dashcam clip) beside the bird.

Prints one markdown row per capture: frames, frames registered, the matcher and mapper chosen,
the mean reprojection error and seconds per stage (capture, features, matching, mapping), with
the settings ``driveenv build-scene`` uses (``SfmConfig()``). The forward rows also give the
capture kind ``align`` finds and the camera path's tilt after alignment (the camera heights'
spread over the fitted ground, as a share of the path's length: a level world gives nearly 0).
The bird row is ``sfm_bird.py``'s run (errors against its reference model), on
``--bird-frames`` frames of the video.

    .venv/bin/python benchmarks/sfm_street.py
    .venv/bin/python benchmarks/sfm_street.py --bird-frames 0     # forward captures only
    .venv/bin/python benchmarks/sfm_street.py --captures dashcam --bird-frames 0
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from results import load, write_section
from sfm_bird import DATA
from sfm_bird import run as run_bird

from scene_builder.align import AlignConfig, align_dataset
from scene_builder.capture import CaptureConfig, capture
from scene_builder.datasets import load_dataset
from scene_builder.sfm import SfmConfig, recover_poses

CAPTURES = {
    "lund": ("lund_street (29 photos, 1024x768)", DATA / "lund_street" / "images", 1.0),
    "dashcam": (
        "dashcam_highway (38 frames, 640x360)",
        DATA / "dashcam_highway" / "test_video.mp4",
        2.0,
    ),
}


def run_forward(source: Path, downscale: float, work: Path) -> dict:
    """Capture, poses and align of one forward capture, timed."""
    dataset_dir = work / source.stem
    started = time.perf_counter()
    capture(source, dataset_dir, CaptureConfig(downscale=downscale, min_sharpness=0.0))
    capture_seconds = time.perf_counter() - started
    report = recover_poses(dataset_dir, SfmConfig(), overwrite=True)
    started = time.perf_counter()
    aligned = align_dataset(dataset_dir, AlignConfig(camera_height=1.5))
    align_seconds = time.perf_counter() - started
    poses = load_dataset(dataset_dir).poses
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1).sum()
    return {
        "frames": report.total,
        "registered": report.registered,
        "matcher": report.matcher,
        "mapper": report.mapper,
        "reprojection_px": report.mean_reprojection_error,
        "kind": aligned.extras.get("scene_kind", "arena"),
        "tilt": float(np.ptp(poses[:, 2, 3]) / max(steps, 1e-9)),
        "seconds": {"capture": capture_seconds, **report.seconds, "align": align_seconds},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bird-frames", type=int, default=40, help="0: leave the bird out")
    parser.add_argument("--captures", nargs="+", default=list(CAPTURES), choices=list(CAPTURES))
    parser.add_argument("--work", type=Path, help="keep the datasets here (default: a temp folder)")
    args = parser.parse_args()
    load_at_start = load()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    lines = [
        "settings: `SfmConfig()` (what build-scene runs); align with camera-height=1.5",
        "",
        "| capture | frames | registered | matcher / mapper | reproj px | kind | height spread "
        "/ path | capture s | features s | matching s | mapping s | align s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines))
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        for key in args.captures:
            name, source, downscale = CAPTURES[key]
            row = run_forward(source, downscale, work)
            s = row["seconds"]
            lines.append(
                f"| {name} | {row['frames']} | {row['registered']} | {row['matcher']} / "
                f"{row['mapper']} | {row['reprojection_px']:.2f} | {row['kind']} "
                f"| {100 * row['tilt']:.1f}% | {s['capture']:.1f} | {s['features']:.1f} "
                f"| {s['matching']:.1f} | {s['mapping']:.1f} | {s['align']:.1f} |"
            )
            print(lines[-1], flush=True)
        if args.bird_frames:
            row = run_bird(args.bird_frames, SfmConfig(), work)
            s = row["seconds"]
            lines.append(
                f"| bird.mp4 ({args.bird_frames} frames; rot median {row['rot_median_deg']:.2f}°, "
                f"pos median {100 * row['pos_median_share']:.2f}% of extent) | {row['frames']} "
                f"| {row['registered']} | {row['matcher']} | {row['reprojection_px']:.2f} | arena "
                f"| - | {s['capture']:.1f} | {s['features']:.1f} | {s['matching']:.1f} "
                f"| {s['mapping']:.1f} | - |"
            )
            print(lines[-1], flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    write_section("sfm_street", "\n".join(lines), load_at_start=load_at_start)


if __name__ == "__main__":
    main()
