"""Simulator speed and renderer agreement: the table of issue 5.

Prints steps per second for: state only; the mesh camera at 64x64 RGB (1 env, and 8 envs
batched); on the bird, the baked, mesh and field cameras at 64x64 RGB (1 env, and 8 envs
batched) with the batched/unbatched and baked/mesh ratios; with ``--contention``, every row
again beside one CPU-bound competing process and its loaded / idle ratio; the median depth difference between
the field and mesh cameras at the same poses; and, with ``--memory`` (instead of the speed table),
100,000 steps of the mesh camera and 10,000 of the field camera at 64x64 RGB, with the resident
memory and the speed over the first and the last 10% of each run, plus a PyBullet client leak check.

    .venv/bin/python benchmarks/env_speed.py                       # synthetic scene + bird if built
    .venv/bin/python benchmarks/env_speed.py --memory [--mesh-steps 100000 --field-steps 10000]
    .venv/bin/python benchmarks/env_speed.py --contention --no-agreement --seconds 3

The synthetic scene is built into a temporary folder. The field rows need a scene with a
radiance field (default: assets/scenes/bird when it exists). Run it on an idle machine for
throughput figures: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def steps_per_second(env_or_vec, seconds: float, batched: bool) -> tuple[float, float]:
    """Env steps per second (all sub-envs counted) with random actions, after a warm-up, and the
    CPU time per env step in ms (all threads of this process): on a machine shared with other
    jobs the wall-clock rate falls with the load, the CPU time per step much less."""
    rng = np.random.default_rng(0)
    shape = env_or_vec.action_space.shape
    env_or_vec.reset(seed=0)
    for _ in range(5):
        _step(env_or_vec, rng.uniform(-1, 1, shape).astype(np.float32), batched)
    count, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        _step(env_or_vec, rng.uniform(-1, 1, shape).astype(np.float32), batched)
        count += env_or_vec.num_envs if batched else 1
    cpu_ms = 1000 * (time.process_time() - cpu) / count
    return count / (time.perf_counter() - start), cpu_ms


def _step(env, action, batched: bool) -> None:
    _, _, terminated, truncated, _ = env.step(action)
    if not batched and (terminated or truncated):
        env.reset()


def measure(config, num_envs: int, seconds: float) -> tuple[float, float]:
    from simulator import make_env, make_vec

    if num_envs == 1:
        env = make_env(config)
        try:
            return steps_per_second(env, seconds, batched=False)
        finally:
            env.close()
    vec = make_vec(config, num_envs)
    try:
        return steps_per_second(vec, seconds, batched=True)
    finally:
        vec.close()


def depth_agreement(scene_path: Path, field_mode: str, size: int = 64) -> dict[str, float]:
    """Field vs mesh z-depth at every spawn pose of the scene, on pixels both cameras see.

    With ``field_mode="free"`` the field marches its rays without the mesh, so this compares the
    two geometries independently; ``guided`` shows what the simulator's fast path returns.
    """
    from simulator import EnvConfig, make_env

    depths = {}
    for renderer in ("field", "mesh"):
        env = make_env(
            EnvConfig(
                scene=scene_path,
                obs="depth",
                renderer=renderer,
                field_mode=field_mode,
                image_size=size,
            )
        )
        try:
            frames = []
            for index in range(len(env.scene.spawns)):
                frames.append(env.reset(seed=0, options={"task_index": index})[0]["depth"])
            depths[renderer] = np.stack(frames)
            max_depth, arena = env.max_depth, env.arena_size
        finally:
            env.close()
    both = (depths["field"] < max_depth) & (depths["mesh"] < max_depth)
    difference = np.abs(depths["field"] - depths["mesh"])[both]
    return {
        "median_m": float(np.median(difference)),
        "median_rel": float(np.median(difference / depths["mesh"][both])),
        "within_2pct_arena": float(np.mean(difference < 0.02 * arena)),
        "pixels": int(both.sum()),
        "arena": arena,
    }


def rss_mb() -> float:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_run(config, steps: int) -> dict[str, float]:
    """One env stepped ``steps`` times with random actions (reset when an episode ends).

    Returns the resident memory (MB) after a 100-step warm-up, after the first 10% and at the
    end, and the speed over the first and the last 10% of the loop both as steps per wall-clock
    second and as CPU milliseconds per step (this process, all threads): on a shared machine the
    wall-clock rate follows the other jobs' load, the CPU time per step much less. A camera that
    leaks shows a growing RSS and a rising CPU time per step.
    """
    from simulator import make_env

    env = make_env(config)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    tenth = max(steps // 10, 1)
    try:
        for _ in range(100):
            _step(env, rng.uniform(-1, 1, 2), batched=False)
        found = {"rss_start": rss_mb()}
        clock = (time.perf_counter(), time.process_time())
        for step in range(1, steps + 1):
            _step(env, rng.uniform(-1, 1, 2), batched=False)
            if step == tenth:
                found["rate_first"] = tenth / (time.perf_counter() - clock[0])
                found["cpu_ms_first"] = 1000 * (time.process_time() - clock[1]) / tenth
                found["rss_first"] = rss_mb()
            if step == steps - tenth:
                clock = (time.perf_counter(), time.process_time())
        found["rate_last"] = tenth / (time.perf_counter() - clock[0])
        found["cpu_ms_last"] = 1000 * (time.process_time() - clock[1]) / tenth
        found["rss_end"] = rss_mb()
    finally:
        env.close()
    return found


def leaked_clients(config) -> int:
    """PyBullet clients still open after 50 envs were created and closed (should be 0)."""
    import pybullet

    from simulator import make_env
    from simulator.world import OPEN_CLIENTS

    for _ in range(50):
        make_env(config).close()
    return len(OPEN_CLIENTS) + sum(pybullet.isConnected(physicsClientId=c) for c in range(200))


def memory_main(args) -> None:
    """``--memory``: the long loops of issue 15 for both cameras, into section env_speed_memory.

    Targets: RSS growth (end minus after the first 10%) under 20 MB, and end speed at least 90%
    of the speed over the first 10% (in CPU time per step).
    """
    import torch
    from results import load, markdown_table, tee, write_section

    from simulator import EnvConfig

    torch.set_num_threads(2)
    load_at_start = load()
    scene = Path(args.field_scene)
    runs = [("baked", args.mesh_steps), ("mesh", args.mesh_steps), ("field", args.field_steps)]
    rows = []
    for renderer, steps in runs:
        config = EnvConfig(scene=scene, obs="rgb", renderer=renderer, image_size=64)
        started = time.perf_counter()
        found = memory_run(config, steps)
        print(f"{renderer}: {steps:,} steps in {time.perf_counter() - started:.0f} s", flush=True)
        growth = found["rss_end"] - found["rss_first"]
        ratio = found["cpu_ms_first"] / found["cpu_ms_last"]  # end speed / start speed, CPU
        ok = "yes" if growth < 20 and ratio >= 0.9 else "no"
        rss = f"{found['rss_start']:.0f} / {found['rss_first']:.0f} / {found['rss_end']:.0f}"
        speed = f"{found['rate_first']:,.0f} / {found['rate_last']:,.0f}"
        cpu = f"{found['cpu_ms_first']:.2f} / {found['cpu_ms_last']:.2f}"
        rows.append([f"{renderer} 64x64 rgb ({scene.name})", f"{steps:,}", rss])
        rows[-1] += [f"{growth:+.1f}", speed, cpu, f"{ratio:.0%}", ok]
    clients = leaked_clients(EnvConfig(scene=scene, obs="state"))
    header = ["camera", "steps", "RSS start / 10% / end (MB)", "growth (MB)"]
    header += ["steps/s first / last 10%", "CPU ms/step first / last 10%", "end / start speed"]
    header += ["meets targets"]
    print(f"Long runs, one env, load average {load_at_start} at the start ({os.cpu_count()} cores)")
    with tee() as printed:
        print(markdown_table(header, rows))
        print(f"\nPyBullet clients left after 50 create/close: {clients}")
        print(
            "Targets: growth under 20 MB (end minus after the first 10%), end speed at least 90%"
            " of the start speed, judged on CPU time per step (the wall-clock rate follows the"
            f" load of other jobs). Load average at the end: {os.getloadavg()[0]:.2f}."
        )
    write_section("env_speed_memory", printed.getvalue(), load_at_start=load_at_start)


def speed_configs(synthetic: Path, field_scene: Path | None) -> dict:
    """Label -> (EnvConfig, number of envs) of every steps/s row."""
    from simulator import EnvConfig

    state = EnvConfig(scene=synthetic, obs="state")
    mesh = EnvConfig(scene=synthetic, obs="rgb", renderer="mesh", image_size=64)
    configs = {
        "state only, 1 env (synthetic)": (state, 1),
        "state only, 8 envs (synthetic)": (state, 8),
        "mesh 64x64 RGB, 1 env (synthetic)": (mesh, 1),
        "mesh 64x64 RGB, 8 envs batched (synthetic)": (mesh, 8),
    }
    if field_scene is not None:
        for kind in ("baked", "mesh", "field"):
            config = EnvConfig(scene=field_scene, obs="rgb", renderer=kind, image_size=64)
            configs[f"{kind} 64x64 RGB, 1 env ({field_scene.name})"] = (config, 1)
            configs[f"{kind} 64x64 RGB, 8 envs batched ({field_scene.name})"] = (config, 8)
    return configs


def speed_rows(configs: dict, seconds: float, contention: bool) -> tuple[list, dict]:
    """Steps/s rows (with loaded / idle beside one competing process when ``contention``)."""
    from contention import competing_process

    results = {label: measure(config, n, seconds) for label, (config, n) in configs.items()}
    loaded = {}
    if contention:
        with competing_process():
            loaded = {label: measure(config, n, seconds) for label, (config, n) in configs.items()}
    rows = []
    for label, (rate, cpu_ms) in results.items():
        value = f"{rate:,.1f} steps/s ({cpu_ms:.2f} ms CPU/step)"
        if label in loaded:
            value += (
                f"; beside 1 busy process {loaded[label][0]:,.1f} ({loaded[label][0] / rate:.0%})"
            )
        rows.append((label, value))
    return rows, results


def agreement_rows(field_scene: Path) -> list:
    rows = []
    for mode in ("free", "guided"):
        agreement = depth_agreement(field_scene, mode)
        rows.append(
            (
                f"field ({mode}) vs mesh depth, median |diff| ({agreement['pixels']:,} px)",
                f"{agreement['median_m'] * 1000:.1f} mm ({agreement['median_rel']:.1%} of depth)",
            )
        )
        rows.append(
            (
                f"field ({mode}) pixels within 2% of arena of the mesh depth",
                f"{agreement['within_2pct_arena']:.1%} (arena {agreement['arena']:.2f} m)",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--field-scene", default=str(REPO / "assets" / "scenes" / "bird"))
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument(
        "--memory", action="store_true", help="only the long runs of both cameras (memory, speed)"
    )
    parser.add_argument("--mesh-steps", type=int, default=100_000, help="with --memory")
    parser.add_argument("--field-steps", type=int, default=10_000, help="with --memory")
    parser.add_argument(
        "--contention", action="store_true", help="repeat each row beside one busy process"
    )
    parser.add_argument("--no-agreement", action="store_true", help="skip the depth rows")
    args = parser.parse_args()
    if args.memory:
        memory_main(args)
        return

    import torch
    from results import load, tee, write_section

    torch.set_num_threads(2)
    load_at_start = load()
    from scene_builder.synthetic import make_synthetic_scene

    field_scene = Path(args.field_scene)
    has_field = (field_scene / "scene.json").is_file()
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = make_synthetic_scene(Path(tmp) / "synthetic", seed=0)
        configs = speed_configs(synthetic, field_scene if has_field else None)
        rows, results = speed_rows(configs, args.seconds, args.contention)
        ratios = [("mesh", "synthetic")]
        ratios += [(kind, field_scene.name) for kind in ("baked", "mesh", "field")] * has_field
        for kind, name in ratios:
            one = results[f"{kind} 64x64 RGB, 1 env ({name})"][0]
            eight = results[f"{kind} 64x64 RGB, 8 envs batched ({name})"][0]
            rows.append((f"{kind} batched / unbatched ({name})", f"{eight / one:.2f}x"))
        if has_field:
            for envs in ("1 env", "8 envs batched"):  # both in this run: the load cancels out
                baked = results[f"baked 64x64 RGB, {envs} ({field_scene.name})"][0]
                mesh = results[f"mesh 64x64 RGB, {envs} ({field_scene.name})"][0]
                rows.append(
                    (f"baked / mesh steps/s, {envs} ({field_scene.name})", f"{baked / mesh:.2f}")
                )
            eight = results[f"field 64x64 RGB, 8 envs batched ({field_scene.name})"][0]
            rows.append(("field rays/s, 8 envs batched", f"{eight * 64 * 64:,.0f}"))
            rows += [] if args.no_agreement else agreement_rows(field_scene)
        else:
            rows.append(("field rows", f"skipped: no scene bundle at {field_scene}"))

    width = max(len(r[0]) for r in rows)
    print(
        f"DriveEnv simulator speed (load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores)"
    )
    with tee() as printed:
        print(f"| {'measurement'.ljust(width)} | value |")
        print(f"| {'-' * width} | --- |")
        for name, value in rows:
            print(f"| {name.ljust(width)} | {value} |")
    # a contention run keeps its own section: the idle figures stay beside it
    section = "env_speed (contention)" if args.contention else "env_speed"
    write_section(section, printed.getvalue(), load_at_start=load_at_start)


if __name__ == "__main__":
    main()
