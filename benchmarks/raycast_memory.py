"""Memory and speed of the mesh ray caster over many casts (issue 15, point 3).

Casts the rays of one 64x64 camera at the shipped bird's visual mesh again and again, in a
fresh process per thread setting, and reports the resident memory growth per call and the
calls/s over the first and the last 10% of the run. ``nthreads=0`` is what
``scene_builder.raycast.MeshCaster`` uses (TBB's shared arena); 1 and 2 are for comparison.

    python benchmarks/raycast_memory.py [--calls 30000] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIRD = REPO / "assets" / "scenes" / "bird"


def rss_mb() -> float:
    """Resident memory of this process in MB (/proc/self/statm)."""
    import resource

    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 1e6


def measure(threads: int, calls: int) -> dict:
    """Run ``calls`` casts with ``nthreads=threads`` in this process; RSS and speed."""
    import numpy as np

    import scene_builder.raycast as raycast
    from scene_builder.bundle import load_scene
    from simulator.renderers import CameraCaster
    from simulator.sensors import CameraModel

    raycast.SHARED_ARENA = threads
    scene = load_scene(BIRD)
    camera = CameraModel(64, 64, 90.0, 0.0, 0.05 * scene.arena_size, 10.0)
    caster = CameraCaster(scene.visual_mesh_path, camera, 5 * scene.arena_size)
    spawn = scene.spawns[0]
    poses = np.stack(
        [camera.camera_to_world(spawn.x, spawn.y, spawn.yaw + 0.001 * i) for i in range(100)]
    )
    for i in range(200):  # warm up: open3d's first casts allocate its buffers
        caster.cast(poses[i % 100][None])
    tenth = max(calls // 10, 1)
    start_rss, stamps = rss_mb(), [time.perf_counter()]
    for i in range(calls):
        caster.cast(poses[i % 100][None])
        if (i + 1) % tenth == 0:
            stamps.append(time.perf_counter())
    growth = rss_mb() - start_rss
    return {
        "threads": threads,
        "calls": calls,
        "growth_mb": growth,
        "kb_per_call": 1e3 * growth / calls,
        "start_calls_s": tenth / (stamps[1] - stamps[0]),
        "end_calls_s": tenth / (stamps[-1] - stamps[-2]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30_000)
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.calls)))
        return
    rows = []
    for threads in (0, 1, 2):
        out = subprocess.run(
            [sys.executable, __file__, "--calls", str(args.calls), "--child", str(threads)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append(
            [
                r["threads"],
                r["calls"],
                round(r["growth_mb"], 1),
                round(r["kb_per_call"], 2),
                round(r["start_calls_s"]),
                round(r["end_calls_s"]),
                round(r["end_calls_s"] / r["start_calls_s"], 2),
            ]
        )
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import markdown_table, write_section

    header = [
        "nthreads",
        "calls",
        "RSS growth MB",
        "kB/call",
        "calls/s first 10%",
        "calls/s last 10%",
        "end/start",
    ]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_write:
        write_section(
            "Mesh ray caster memory (raycast_memory.py)",
            "One 64x64 camera cast at the bird's visual mesh per call, a fresh process per "
            "setting; `nthreads=0` is what `scene_builder.raycast.MeshCaster` uses.\n\n" + table,
        )


if __name__ == "__main__":
    main()
