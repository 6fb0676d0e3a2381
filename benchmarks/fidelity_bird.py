"""Rendering fidelity of the shipped bird scene against the real frames it never trained on.

Prints PSNR and SSIM (mean ± std over the held-out frames: those the field never trained on, by
the hold-out rule its field.json records) per lighting preset for four views at the same poses:
the radiance field marching freely, the simulator's field camera (the field guided by the
collision mesh's depth), the simulator's baked-texture camera (the bundle's texture atlas,
projective-textured from the training frames only) and its vertex-coloured mesh camera
("standard simulator rendering"),
and writes the table to the ``fidelity_bird`` section of ``benchmarks/RESULTS.md``. Only
``capture`` aims at the light the real frames were taken in; the other presets show how far each
moves the look.

    .venv/bin/python benchmarks/fidelity_bird.py                  # every held-out frame
    .venv/bin/python benchmarks/fidelity_bird.py --frames 4 --width 68
    .venv/bin/python benchmarks/fidelity_bird.py --scene assets/scenes/street   # fidelity_street
    .venv/bin/python benchmarks/fidelity_bird.py --views baked,mesh   # a subset of the rows
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", type=Path, default=REPO / "assets" / "scenes" / "bird")
    parser.add_argument("--frames", type=int, default=0, help="held-out frames (0: all)")
    parser.add_argument("--width", type=int, default=136, help="rendering width in pixels")
    parser.add_argument(
        "--views", default="free,field,baked,mesh", help="comma-separated subset of the views"
    )
    args = parser.parse_args()

    import torch
    from results import load, tee, write_section

    torch.set_num_threads(2)
    load_at_start = load()
    from eval.fidelity import FidelityConfig, SimulatorView, measure_fidelity
    from scene_builder import load_scene
    from scene_builder.datasets import load_dataset

    scene = load_scene(args.scene)
    dataset = load_dataset(scene.dataset_dir)
    radiance_field = scene.load_field()
    presets = list(radiance_field.lighting_presets)
    config = FidelityConfig(frames=args.frames, width=args.width)
    views = {
        "free": ("field, marching freely", radiance_field),
        "field": ("simulator field camera (mesh-guided)", SimulatorView(scene, "field")),
        "baked": ("simulator baked-texture camera", SimulatorView(scene, "baked")),
        "mesh": ("simulator vertex-colour mesh camera", SimulatorView(scene, "mesh")),
    }
    views = dict(views[key] for key in args.views.split(","))
    started = time.perf_counter()
    results = {
        name: measure_fidelity(view, dataset, presets, config) for name, view in views.items()
    }
    first = next(iter(results.values()))
    print(
        f"{scene.name}: {len(first.frames)} held-out frames at {first.width}x{first.height}, "
        f"{time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.1f}"
    )
    print()
    with tee() as printed:
        print(
            f"{len(first.frames)} held-out frames (every {first.holdout_every}th, the field's "
            f"own rule) at {first.width}x{first.height}, mean ± std\n"
        )
        print("| view | preset | PSNR (dB) | SSIM |")
        print("| --- | --- | ---: | ---: |")
        for name, result in results.items():
            for preset, s in result.preset_scores().items():
                print(
                    f"| {name} | {preset} | {s['psnr']:.2f} ± {s['psnr_std']:.2f} "
                    f"| {s['ssim']:.3f} ± {s['ssim_std']:.3f} |"
                )
    name = "fidelity_bird" if scene.name == "bird" else f"fidelity_{scene.name}"
    partial = args.views != parser.get_default("views")  # a subset gets a section of its own
    section = f"{name} ({args.views})" if partial else name
    write_section(section, printed.getvalue(), load_at_start=load_at_start)


if __name__ == "__main__":
    main()
