"""Embedded field on the bird capture at 1/4 resolution (136x240): quality over time and speed.

Prints a table of held-out PSNR/SSIM after 1, 2, 5 and 10 minutes of training (every 8th frame
held out, never trained on) under both honest appearance rules (NeRF-W left-half fit scored on
the right half, and the mean training code), training throughput, render throughput for 16
cameras of 64x64 (free marching and with a known surface depth), and what two lighting presets
do to brightness and depth. Geometry is scored where PSNR cannot see it: the depth rendered along
the held-out frames' COLMAP keypoints against their triangulated points (median relative
error). Training time excludes the evaluations.

    .venv/bin/python benchmarks/field_bird.py                       # the full 10-minute run
    .venv/bin/python benchmarks/field_bird.py --speed-only          # throughput only (~1 minute)
    .venv/bin/python benchmarks/field_bird.py --minutes 2 --marks 1,2
    .venv/bin/python benchmarks/field_bird.py --speed-only --contention  # + beside a busy process

Run it on an idle machine for throughput figures (it prints the load average it saw). The
tables also go to the ``field_bird`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from results import tee, write_section

from common.threads import torch_threads
from scene_builder.fields.evaluate import evaluate_holdout, evaluate_sparse_depth, mean_code
from scene_builder.fields.sparse_depth import load_sparse_depth
from scene_builder.importers import import_poses
from scene_builder.train import TrainConfig, Trainer

SHARED = Path(
    os.environ.get("DRIVEENV_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
NERFACTO_CPU_RAYS_PER_SECOND = 470  # nerfacto on a CPU as DESIGN.md records it (~10 s/iteration)


def render_speed(
    trainer: Trainer, cameras: int = 16, size: int = 64, repeats: int = 3
) -> tuple[float, float]:
    """Rays/s for ``cameras`` cameras of size x size in one call (free marching, surface band)
    and for one camera of 4*size x 4*size (the same number of rays)."""
    from scene_builder.fields.embedded import EmbeddedRadianceField

    capture = mean_code(trainer.model, trainer.train.count)
    field = EmbeddedRadianceField(
        trainer.out_dir, {"presets": {"capture": capture.tolist()}}, trainer.model
    )
    poses = (
        trainer.holdout.poses[:cameras]
        if trainer.holdout is not None
        else trainer.train.poses[:cameras]
    )
    poses = poses.repeat((cameras + len(poses) - 1) // len(poses), 1, 1)[:cameras]
    scale = size / trainer.train.rgb.shape[2]  # the full width, cropped square around the centre
    fx, fy = trainer.train.intrinsics[0, :2].tolist()
    intrinsics = torch.tensor([fx * scale, fy * scale, size / 2, size / 2])

    def timed(poses=poses, intrinsics=intrinsics, size=size, **kwargs) -> float:
        field.render(poses, intrinsics, size, size, **kwargs)  # warm-up
        tick = time.perf_counter()
        for _ in range(repeats):
            with torch_threads(torch.get_num_threads()):  # as the simulator's field camera
                field.render(poses, intrinsics, size, size, **kwargs)
        return repeats * len(poses) * size * size / (time.perf_counter() - tick)

    free = timed()
    # The same number of rays as one large image: batching must not cost more per ray.
    big = 4 * size
    one_large = timed(poses[:1], intrinsics * torch.tensor([4.0, 4.0, 4.0, 4.0]), big)
    # The simulator's path: the mesh's ray-cast depth; here the field's own depth stands in for it.
    reference = field.render(poses, intrinsics, size, size)
    surface = torch.where(reference.accumulation > 0.5, reference.depth, torch.tensor(float("inf")))
    banded = timed(surface_depth=surface)
    return free, banded, one_large


def preset_effect(
    trainer: Trainer, first: str = "bright", second: str = "dim"
) -> tuple[float, float, float]:
    """Mean brightness under two presets and the largest depth difference, on held-out views."""
    from scene_builder.fields.embedded import EmbeddedRadianceField

    capture = mean_code(trainer.model, trainer.train.count)
    presets = {"capture": capture.tolist(), **trainer.fit_presets(capture)}
    field = EmbeddedRadianceField(trainer.out_dir, {"presets": presets}, trainer.model)
    views = trainer.holdout if trainer.holdout is not None else trainer.train
    _, height, width, _ = views.rgb.shape
    a = field.render(views.poses[:4], views.intrinsics[:4], width, height, appearance=first)
    b = field.render(views.poses[:4], views.intrinsics[:4], width, height, appearance=second)
    return float(a.rgb.mean()), float(b.rgb.mean()), float((a.depth - b.depth).abs().max())


def subset(views, count: int):
    """The first ``count`` held-out frames, spread evenly (all when ``count`` is 0)."""
    if count <= 0 or count >= views.count:
        return views
    from dataclasses import replace

    pick = torch.linspace(0, views.count - 1, count).round().long()
    return replace(
        views,
        rgb=views.rgb[pick],
        poses=views.poses[pick],
        intrinsics=views.intrinsics[pick],
        distortion=None if views.distortion is None else views.distortion[pick],
        frame_indices=views.frame_indices[pick.numpy()],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget")
    parser.add_argument(
        "--marks", default="1,2,5,10", help="minutes at which to score held-out frames"
    )
    parser.add_argument(
        "--speed-only", action="store_true", help="only throughput (30 training steps)"
    )
    parser.add_argument("--lighting-augmentation", action="store_true")
    parser.add_argument(
        "--mark-frames",
        type=int,
        default=0,
        help="score only this many held-out frames at the intermediate marks (0: all); the last mark scores all",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--contention",
        action="store_true",
        help="repeat the throughput measurement beside one busy process (loaded / idle)",
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch folder (default: a temp folder)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    work = args.work or Path(tempfile.mkdtemp(prefix="field_bird_"))
    dataset = work / "dataset"
    if not (dataset / "transforms.json").is_file():
        # The COLMAP model, not poses_bounds.npy: LLFF keeps one focal length for all frames,
        # while this capture's frames each have their own (averaging them blurs the field).
        bird = SHARED / "bird_capture"
        import_poses(bird / "sparse" / "0", dataset, images=bird / "images")
    load_before = os.getloadavg()[0]
    config = TrainConfig(
        downscale=4,
        steps=None,
        max_minutes=0.6 if args.speed_only else args.minutes,
        lighting_augmentation=args.lighting_augmentation,
        checkpoint_seconds=1e9,
        eval_every=10**9,
    )
    trainer = Trainer(dataset, work / "field", config)
    held_out_keypoints = load_sparse_depth(
        trainer.dataset, trainer.holdout.frame_indices, config.downscale
    )
    marks = [] if args.speed_only else [float(m) for m in args.marks.split(",")]
    rows = []

    def score(trainer: Trainer) -> None:
        while marks and trainer.elapsed >= 60 * marks[0]:
            minute = marks.pop(0)
            last = not marks
            views = trainer.holdout if last else subset(trainer.holdout, args.mark_frames)
            scores = evaluate_holdout(trainer.model, views, trainer.train.count)
            depth = evaluate_sparse_depth(trainer.model, trainer.holdout, held_out_keypoints)
            rows.append((minute, trainer.step, scores, depth))
            print(f"  ({scores.frames} held-out frames scored)", flush=True)
            print(
                f"  {minute:4.1f} min step {trainer.step:5d}: left-half {scores.psnr_left_half:.2f} dB "
                f"/ {scores.ssim_left_half:.3f}, mean code {scores.psnr_mean_code:.2f} dB / "
                f"{scores.ssim_mean_code:.3f}, keypoint depth error {depth.median_relative_error:.1%}",
                flush=True,
            )

    trainer.out_dir.mkdir(parents=True, exist_ok=True)
    trainer.run(callback=score)
    if marks:  # the planned steps ended a little before the last mark
        marks[:] = [marks[-1]]
        trainer.elapsed = max(trainer.elapsed, 60 * marks[0])
        score(trainer)
    train_rays = trainer.step * config.batch_rays / trainer.elapsed
    renders = render_speed(trainer)
    presets = preset_effect(trainer)
    load_after = os.getloadavg()[0]
    loaded = loaded_speed(dataset, work / "field_loaded", trainer) if args.contention else None

    with tee() as printed:
        _tables(args, trainer, rows, load_before, load_after, train_rays, renders, presets)
        if loaded is not None:
            _contention_table((train_rays, *renders), loaded)
    section = "field_bird (contention)" if args.contention else "field_bird"
    write_section(section, printed.getvalue(), load_at_start=f"{load_before:.2f}")


def loaded_speed(dataset: Path, out_dir: Path, trained: Trainer) -> tuple[float, ...]:
    """Training throughput of a short run, and the render throughput of the idle run's field
    (the same field, so the same work per ray: a field trained longer has more surface pixels
    for the guided render), beside one busy process."""
    from contention import competing_process

    config = TrainConfig(
        downscale=4, steps=None, max_minutes=0.6, checkpoint_seconds=1e9, eval_every=10**9
    )
    with competing_process():
        trainer = Trainer(dataset, out_dir, config)
        out_dir.mkdir(parents=True, exist_ok=True)
        trainer.run()
        train_rays = trainer.step * config.batch_rays / trainer.elapsed
        return (train_rays, *render_speed(trained))


def _contention_table(idle: tuple[float, ...], loaded: tuple[float, ...]) -> None:
    print()
    print("| throughput beside one busy process (rays/s) | idle | loaded | loaded / idle |")
    print("| --- | ---: | ---: | ---: |")
    names = (
        "training",
        "render 16 x 64x64, free marching",
        "render 16 x 64x64, surface depth given",
        "render 1 x 256x256, free marching",
    )
    for name, a, b in zip(names, idle, loaded, strict=True):
        print(f"| {name} | {a:,.0f} | {b:,.0f} | {b / a:.0%} |")


def _tables(args, trainer, rows, load_before, load_after, train_rays, renders, presets) -> None:
    """The quality-over-time table and the speed table."""
    free, banded, one_large = renders
    bright, dim, depth_change = presets
    _, height, width, _ = trainer.train.rgb.shape
    print()
    print(
        f"bird_capture at {width}x{height}, {trainer.train.count} training / {trainer.holdout.count} held-out frames"
    )
    print(
        f"load average {load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} cores, {args.threads} threads)"
    )
    print()
    print(
        "| minutes | steps | PSNR left-half fit | SSIM left-half fit | PSNR mean code | SSIM mean code "
        "| keypoint depth error (median) | within 5% |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for minute, step, s, d in rows:
        print(
            f"| {minute:g} | {step} | {s.psnr_left_half:.2f} | {s.ssim_left_half:.3f} | "
            f"{s.psnr_mean_code:.2f} | {s.ssim_mean_code:.3f} | {d.median_relative_error:.1%} "
            f"| {d.within_5_percent:.0%} |"
        )
    print()
    print("| measure | value |")
    print("| --- | ---: |")
    print(f"| training throughput (rays/s) | {train_rays:,.0f} |")
    print(f"| nerfacto on CPU (rays/s, DESIGN.md) | {NERFACTO_CPU_RAYS_PER_SECOND} |")
    print(f"| ratio | {train_rays / NERFACTO_CPU_RAYS_PER_SECOND:.0f}x |")
    print(f"| render 16 x 64x64, free marching (rays/s) | {free:,.0f} |")
    print(f"| render 16 x 64x64, surface depth given (rays/s) | {banded:,.0f} |")
    print(f"| render 1 x 256x256, free marching (rays/s) | {one_large:,.0f} |")
    print(
        f"| mean brightness 'bright' / 'dim' | {bright:.3f} / {dim:.3f} ({bright / max(dim, 1e-6):.2f}x) |"
    )
    print(f"| largest depth difference between the two presets | {depth_change:.2e} |")


if __name__ == "__main__":
    main()
