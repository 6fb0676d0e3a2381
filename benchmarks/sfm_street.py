"""Benchmark: pose recovery on the forward captures (lund_street, the dashcam clip) beside the bird.

Prints one markdown row per capture: frames, frames registered, the matcher and mapper chosen,
the mean reprojection error and seconds per stage (capture, features, matching, mapping), with
the settings ``driveenv build-scene`` uses (``SfmConfig()``). The forward rows also give the
capture kind ``align`` finds and the camera path's tilt after alignment (the camera heights'
spread over the fitted ground, as a share of the path's length: a level world gives nearly 0).
The bird row is ``sfm_bird.py``'s run (errors against its reference model), on
``--bird-frames`` frames of the video.

Rows: lund_street's 29 photos at full size (1024x768) and at half size; the dashcam clip's 38
frames at 640x360 (what the street tests use) and at 960x540, and its first 19 frames at 960x540
(the same spacing, half the path). The issue's target is a 200-frame 960x540 clip posed in 5
minutes; the clip in ../shared/data has 38 frames, so the script extrapolates, and says so:
features, capture and align per frame times 200, matching per pair times the pairs a 200-frame
video gets, mapping from its growth between the 19- and the 38-frame rows (a power law through
the two; the growth is measured, not assumed linear).

Every row is cached in ``--results`` (JSON) as it finishes, so rows can be run one at a time
(``--captures lund-half``); the section is written from every cached row.

    .venv/bin/python benchmarks/sfm_street.py
    .venv/bin/python benchmarks/sfm_street.py --bird-frames 0     # forward captures only
    .venv/bin/python benchmarks/sfm_street.py --captures dashcam --bird-frames 0
"""

from __future__ import annotations

import argparse
import json
import math
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
from scene_builder.sfm import SfmConfig, recover_poses, sequential_pairs
from scene_builder.sfm_config import resolve

DASHCAM = DATA / "dashcam_highway" / "test_video.mp4"  # 38 frames of 1280x720
CAPTURES = {
    "lund": ("lund_street (29 photos, 1024x768)", DATA / "lund_street" / "images", 1.0),
    "lund-half": (
        "lund_street (29 photos, half size: 512x384)",
        DATA / "lund_street" / "images",
        2.0,
    ),
    "dashcam": ("dashcam_highway (38 frames, 640x360)", DASHCAM, 2.0),
    "dashcam-960": ("dashcam_highway (38 frames, 960x540)", DASHCAM, 1280 / 960),
    "dashcam-960-19": ("dashcam_highway (first 19 frames, 960x540)", DASHCAM, 1280 / 960),
}
FIRST_FRAMES = {"dashcam-960-19": 19}  # rows that keep only a clip's first frames
TARGET_FRAMES = 200  # the dashcam target: 200 frames at 960x540 in 5 minutes
LOOP_KEYFRAMES = SfmConfig().loop_keyframes


def run_forward(source: Path, downscale: float, work: Path, first: int | None = None) -> dict:
    """Capture, poses and align of one forward capture (its ``first`` frames), timed."""
    dataset_dir = work / source.stem
    started = time.perf_counter()
    capture(source, dataset_dir, CaptureConfig(downscale=downscale, min_sharpness=0.0))
    if first:  # a shorter clip at the same spacing (the manifest still names the rest)
        for image in sorted((dataset_dir / "images").iterdir())[first:]:
            image.unlink()
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
        "settings": report.settings,
        "pairs": report.pairs,
        "reprojection_px": report.mean_reprojection_error,
        "kind": aligned.extras.get("scene_kind", "arena"),
        "tilt": float(np.ptp(poses[:, 2, 3]) / max(steps, 1e-9)),
        "seconds": {"capture": capture_seconds, **report.seconds, "align": align_seconds},
        "cpu": report.cpu_seconds,
    }


def plain(row: dict) -> dict:
    """``row`` with NumPy numbers as Python ones (for the JSON cache)."""
    return json.loads(json.dumps(row, default=float))


def load_now() -> float:
    return os.getloadavg()[0]


def forward_line(name: str, row: dict) -> str:
    s = row["seconds"]
    return (
        f"| {name} | {row['frames']} | {row['registered']} | {row['matcher']} / "
        f"{row['mapper']} | {row.get('pairs', '-')} | {row['reprojection_px']:.2f} | {row['kind']} "
        f"| {100 * row['tilt']:.1f}% | {s['capture']:.1f} | {s['features']:.1f} "
        f"| {s['matching']:.1f} | {s['mapping']:.1f} | {s['align']:.1f} | {cpu_total(row)} "
        f"| {row['load']:.1f} |"
    )


def cpu_total(row: dict) -> str:
    """CPU seconds of the three poses stages, all threads (rows cached before it: -)."""
    return f"{sum(row['cpu'].values()):.1f}" if row.get("cpu") else "-"


def bird_line(row: dict) -> str:
    s = row["seconds"]
    return (
        f"| bird.mp4 ({row['frames']} frames; rot median {row['rot_median_deg']:.2f}°, "
        f"pos median {100 * row['pos_median_share']:.2f}% of extent) | {row['frames']} "
        f"| {row['registered']} | {row['matcher']} | {row.get('pairs', '-')} "
        f"| {row['reprojection_px']:.2f} | arena "
        f"| - | {s['capture']:.1f} | {s['features']:.1f} | {s['matching']:.1f} "
        f"| {s['mapping']:.1f} | - | {cpu_total(row)} | {row['load']:.1f} |"
    )


def extrapolation(row: dict, short: dict | None) -> str:
    """The 960x540 row scaled to ``TARGET_FRAMES`` frames (an extrapolation, and said to be).

    Capture, features and align grow with the frames, matching with the pairs a
    ``TARGET_FRAMES``-frame video gets, mapping along the power law through the short clip's
    row and the full clip's or linearly in the frames, whichever is slower (a sublinear growth
    measured on short clips is not trusted to hold on long ones).
    """
    frames, seconds = row["frames"], row["seconds"]
    settings = resolve(SfmConfig(), TARGET_FRAMES, from_video=True)
    pairs = len(sequential_pairs(TARGET_FRAMES, settings.sequential_overlap, LOOP_KEYFRAMES))
    scale = {k: TARGET_FRAMES / frames for k in seconds}
    scale["matching"] = pairs / row["pairs"]
    growth = "mapping linear in the frames (no short-clip row)"
    if short is not None and short["seconds"]["mapping"] > 0:
        exponent = math.log(seconds["mapping"] / short["seconds"]["mapping"]) / math.log(
            frames / short["frames"]
        )
        scale["mapping"] = max(scale["mapping"], (TARGET_FRAMES / frames) ** exponent)
        growth = (
            f"mapping time grew as frames^{exponent:.2f} from {short['frames']} to {frames} "
            f"frames ({short['seconds']['mapping']:.1f} s to {seconds['mapping']:.1f} s), "
            "scaled by that or linearly, whichever is slower"
        )
    estimate = {k: v * scale[k] for k, v in seconds.items()}
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in estimate.items())
    cpu = sum(v * scale[k] for k, v in row.get("cpu", {}).items())
    idle = (
        f" The poses stages' CPU time (all threads) scaled the same way is {cpu:.0f} s: on 2 "
        f"idle cores they need at least {cpu / 2:.0f} s, more where a stage runs on one thread."
        if cpu
        else ""
    )
    return (
        f"Extrapolated, not measured: {TARGET_FRAMES} frames at 960x540 from the "
        f"{frames}-frame clip ({settings.describe()}: {pairs} pairs instead of {row['pairs']}; "
        f"{growth}): {parts}; {sum(estimate.values()) / 60:.1f} minutes in all at load "
        f"{row['load']:.1f} (target: 5 minutes on 2 idle cores).{idle} ../shared/data holds no "
        f"{TARGET_FRAMES}-frame clip, so the target itself is not measured here."
    )


def table(rows: dict) -> str:
    lines = [
        "settings: `SfmConfig()` (what build-scene runs: the video profile for a video's frames, "
        "the photo profile for a folder of photos); align with camera-height=1.5",
        "",
        "| capture | frames | registered | matcher / mapper | pairs | reproj px | kind | height "
        "spread / path | capture s | features s | matching s | mapping s | align s | poses CPU s "
        "| load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [forward_line(CAPTURES[k][0], rows[k]) for k in CAPTURES if k in rows]
    lines += [bird_line(rows["bird"])] if "bird" in rows else []
    lines += [
        "",
        "load: the 1-minute load average when the row ended (the 2 cores are shared with other "
        "jobs; a stage's seconds follow the load while it ran). One run per row: mapping a "
        "forward capture varies from run to run. Every row comes from the cache (`--results`), "
        "measured by the run of this script that named its capture. poses CPU s: the CPU time "
        "of features, matching and mapping over all their threads (2 idle cores give at most "
        "2 CPU seconds per second).",
    ]
    settings = {rows[k]["settings"] for k in rows if rows[k].get("settings")}
    lines += ["", *(f"- {text}" for text in sorted(settings))]
    if "dashcam-960" in rows:
        lines += ["", extrapolation(rows["dashcam-960"], rows.get("dashcam-960-19"))]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bird-frames", type=int, default=40, help="0: leave the bird out")
    parser.add_argument("--captures", nargs="*", default=list(CAPTURES), choices=list(CAPTURES))
    parser.add_argument("--work", type=Path, help="keep the datasets here (default: a temp folder)")
    parser.add_argument("--results", type=Path, default=Path("runs/bench-sfm-street/rows.json"))
    args = parser.parse_args()
    from common.atomic import write_json_atomic

    load_at_start = load()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    rows = json.loads(args.results.read_text()) if args.results.is_file() else {}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        for key in args.captures:
            _, source, downscale = CAPTURES[key]
            row = run_forward(source, downscale, work / key, FIRST_FRAMES.get(key))
            rows[key] = plain({**row, "load": load_now()})
            write_json_atomic(args.results, rows)
            print(forward_line(CAPTURES[key][0], rows[key]), flush=True)
        if args.bird_frames:
            rows["bird"] = plain(
                {**run_bird(args.bird_frames, SfmConfig(), work), "load": load_now()}
            )
            write_json_atomic(args.results, rows)
    body = table(rows)
    print(body)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    write_section("sfm_street", body, load_at_start=load_at_start)


if __name__ == "__main__":
    main()
