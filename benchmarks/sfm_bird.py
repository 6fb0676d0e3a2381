"""Benchmark: bird.mp4 → capture → poses, scored against the shipped reference COLMAP model.

Prints one markdown table row per run: frames sampled, registered, median/max rotation error,
median position error as a share of the trajectory's extent, and seconds per stage. The errors
are measured after a similarity (Umeyama) alignment of our camera centres to the reference's.

    .venv/bin/python benchmarks/sfm_bird.py                       # every frame of the video
    .venv/bin/python benchmarks/sfm_bird.py --max-frames 32 40    # subsamples, as in the tests
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from results import load, write_section

from scene_builder.align import compare_poses
from scene_builder.capture import CaptureConfig, capture, load_manifest
from scene_builder.datasets import load_dataset
from scene_builder.importers import frames_from_reconstruction, read_colmap_model
from scene_builder.sfm import SfmConfig, recover_poses

DATA = Path(
    os.environ.get("DRIVEENV_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def run(max_frames: int, config: SfmConfig, work: Path) -> dict:
    bird = DATA / "bird_capture"
    dataset_dir = work / f"bird_{max_frames}"
    started = time.perf_counter()
    capture(bird / "bird.mp4", dataset_dir, CaptureConfig(max_frames=max_frames, min_sharpness=0.0))
    capture_seconds = time.perf_counter() - started
    report = recover_poses(dataset_dir, config, overwrite=True)
    dataset = load_dataset(dataset_dir)
    manifest = load_manifest(dataset_dir)
    index = {f["file_path"].split("/")[1]: f["source_index"] for f in manifest["frames"]}
    reference = {
        f.image_path.name: f.camera_to_world
        for f in frames_from_reconstruction(read_colmap_model(bird / "sparse" / "0"), bird)
    }
    matched = np.stack(
        [reference[f"{index[f.image_path.name] + 1:03d}.jpg"] for f in dataset.frames]
    )
    comparison = compare_poses(dataset.poses, matched)
    return {
        "frames": report.total,
        "registered": report.registered,
        "matcher": report.matcher,
        "settings": report.settings,
        "pairs": report.pairs,
        "reprojection_px": report.mean_reprojection_error,
        "rot_median_deg": comparison.median_rotation_deg,
        "rot_max_deg": float(comparison.rotation_deg.max()),
        "pos_median_share": comparison.median_position_share,
        "seconds": {"capture": capture_seconds, **report.seconds},
        "cpu": report.cpu_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-frames", type=int, nargs="+", default=[184])
    parser.add_argument("--max-image-size", type=int, default=960)
    parser.add_argument("--max-features", type=int, default=4096)
    parser.add_argument("--matcher", default="auto", choices=("auto", "sequential", "exhaustive"))
    parser.add_argument("--work", type=Path, help="keep the datasets here (default: a temp folder)")
    args = parser.parse_args()
    config = SfmConfig(
        matcher=args.matcher, max_image_size=args.max_image_size, max_features=args.max_features
    )
    load_at_start = load()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    lines = [
        f"settings: max image size {args.max_image_size}, max features {args.max_features}",
        "",
        "| frames | registered | matcher | reproj px | rot median ° | rot max ° | pos median (% extent) "
        "| capture s | features s | matching s | mapping s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines))
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        for max_frames in args.max_frames:
            row = run(max_frames, config, work)
            s = row["seconds"]
            lines.append(
                f"| {row['frames']} | {row['registered']} | {row['matcher']} "
                f"| {row['reprojection_px']:.2f} | {row['rot_median_deg']:.2f} | {row['rot_max_deg']:.2f} "
                f"| {100 * row['pos_median_share']:.2f} | {s['capture']:.1f} | {s['features']:.1f} "
                f"| {s['matching']:.1f} | {s['mapping']:.1f} |"
            )
            print(lines[-1], flush=True)
    lines += [
        "",
        f"{row['settings']} (the profile `driveenv poses` picks for a video). Errors against "
        "the reference COLMAP model (`bird_capture/sparse/0`) after a similarity alignment of "
        "the camera centres; the target is a median rotation under 1° and position under 1%.",
    ]
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    write_section("sfm_bird", "\n".join(lines), load_at_start=load_at_start)


if __name__ == "__main__":
    main()
