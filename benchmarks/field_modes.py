"""The simulator's field camera in its three modes: held-out fidelity against cost per step.

``guided`` (the default) places a few samples around the collision mesh's depth and gives rays
that miss the mesh a band far away; ``hybrid`` marches the misses freely; ``free`` marches
every ray (``simulator.renderers``). A table-top arena's mesh holds what the camera looks at;
a road scene's mesh is little more than the road, so most of a vehicle's view misses it. Per
scene and mode this prints:

- PSNR and SSIM of the simulator camera against the held-out frames (``capture`` preset,
  ``eval.fidelity.SimulatorView``, the rule and size of ``fidelity_bird.py``);
- milliseconds per environment step with a 64x64 RGB field camera (one env, one torch thread,
  a seeded random drive; the same poses for every mode): CPU and wall time idle, wall time
  beside one busy process (``contention.py``), and the speed kept there (idle / loaded wall).

Written to the ``field_modes`` section of ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/field_modes.py
    .venv/bin/python benchmarks/field_modes.py --scenes assets/scenes/bird runs/dashcam --steps 100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODES = ("guided", "hybrid", "free")


def held_out_scores(scene, mode: str, width: int) -> tuple[float, float]:
    """Mean PSNR and SSIM of the field camera in ``mode`` on the held-out frames (capture)."""
    from eval.fidelity import FidelityConfig, SimulatorView, measure_fidelity
    from scene_builder.datasets import load_dataset

    view = SimulatorView(scene, "field", field_mode=mode)
    result = measure_fidelity(
        view, load_dataset(scene.dataset_dir), ["capture"], FidelityConfig(width=width)
    )
    scores = result.preset_scores()["capture"]
    return scores["psnr"], scores["ssim"]


def step_ms(scene_path: Path, mode: str, steps: int) -> tuple[float, float]:
    """CPU and wall ms per step of one env with a 64x64 field camera in ``mode``."""
    from simulator import EnvConfig, make_env

    config = EnvConfig(
        scene=str(scene_path), obs="rgb", renderer="field", image_size=64, field_mode=mode
    )
    env = make_env(config)
    try:
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        actions = rng.uniform(-1.0, 1.0, (steps + 10, 2)).astype(np.float32)
        for action in actions[:10]:  # warm-up: first renders allocate
            env.step(action)
        start, start_wall = time.process_time(), time.perf_counter()
        for i, action in enumerate(actions[10:]):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset(seed=i + 1)
        cpu = 1000.0 * (time.process_time() - start) / steps
        return cpu, 1000.0 * (time.perf_counter() - start_wall) / steps
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_scenes = [REPO / "assets" / "scenes" / name for name in ("bird", "street")]
    parser.add_argument("--scenes", nargs="+", type=Path, default=default_scenes)
    parser.add_argument("--steps", type=int, default=150, help="timed env steps per mode")
    parser.add_argument("--width", type=int, default=136, help="held-out rendering width")
    args = parser.parse_args()

    import torch
    from contention import competing_process
    from results import load, markdown_table, tee, write_section

    from scene_builder import load_scene

    torch.set_num_threads(1)
    load_at_start = load()
    rows = []
    for path in args.scenes:
        scene = load_scene(path)
        for mode in MODES:
            psnr, ssim = held_out_scores(scene, mode, args.width)
            idle_cpu, idle_wall = step_ms(path, mode, args.steps)
            with competing_process():
                _, loaded_wall = step_ms(path, mode, args.steps)
            rows.append(
                [scene.name, mode, psnr, ssim, idle_cpu, idle_wall, loaded_wall]
                + [idle_wall / loaded_wall]
            )
            print(f"{scene.name} {mode}: {rows[-1][2:]}", flush=True)
    with tee() as printed:
        print(
            "Field camera modes. PSNR / SSIM: the simulator camera against the held-out frames, "
            f"capture preset, {args.width} px wide. ms/step: time per step of one env with a "
            f"64x64 RGB field camera, 1 torch thread, {args.steps} steps of a seeded random "
            "drive; loaded: beside one busy process; speed kept: idle / loaded wall ms.\n"
        )
        header = ["scene", "mode", "PSNR (dB)", "SSIM", "CPU ms/step idle", "wall idle"]
        print(markdown_table([*header, "wall loaded", "speed kept"], rows))
    write_section("field_modes", printed.getvalue(), load_at_start=load_at_start)


if __name__ == "__main__":
    main()
