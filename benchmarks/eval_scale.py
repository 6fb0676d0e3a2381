"""Evaluation campaigns past one process pool: the table of issue 18.

One campaign (built-in expert and random drivers, two lighting conditions, ``--episodes`` seeds
each, state observations, on the bird scene) is run

1. with the process backend (``--workers W``) and with a local Ray instance of W CPUs, alternately,
   ``--repeats`` times each: episodes per second, and Ray's overhead against the pool (target at
   most 15%); the Ray instance is started before the clock runs (a cluster is already up when
   ``--ray auto`` is used), its workers are cold on the first campaign;
2. on a ``ray.cluster_utils.Cluster`` of four one-CPU worker nodes on this machine (the head has
   no CPU, so every chunk runs on a worker node): are its rows those of the process backend?
3. on the same cluster again, killing the node that runs a chunk once the first chunk is back:
   episodes lost, episodes written twice, chunks that ran again.

Then it measures what a 100-node estimate needs (the scene blob's size and its pack and unpack
times, the driver's cost to write one episode) and prints the estimate with its arithmetic.

    .venv/bin/python benchmarks/eval_scale.py                       # bird, 2 workers
    .venv/bin/python benchmarks/eval_scale.py --episodes 10 --repeats 1   # a quicker look
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONDITIONS = ["capture", "dim"]
NODES = 4


def campaign_config(scene, episodes: int, workers: int):
    from eval.rollouts import AgentSpec, CampaignConfig

    agents = [AgentSpec("expert", "expert"), AgentSpec("random", "random")]
    return CampaignConfig(scene.root, agents, CONDITIONS, list(range(episodes)), workers=workers)


def timed(config, out: Path, scene, **backend) -> float:
    """Seconds of one campaign into a fresh ``out``."""
    from eval.rollouts import run_campaign

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    run_campaign(config, out, show_progress=False, scene=scene, **backend)
    return time.perf_counter() - start


def noted_env(config, agent, condition, scene):
    """``make_sim_env``, noting which node started the chunk (this script's functions travel to
    the workers by value)."""
    import ray

    from eval.rollouts import make_sim_env

    note = Path(os.environ["EVAL_SCALE_STARTS"]) / uuid.uuid4().hex
    note.write_text(ray.get_runtime_context().get_node_id())
    return make_sim_env(config, agent, condition, scene)


def count_episode_writes() -> list[tuple]:
    """The (agent, condition, seed) of every episode the Ray backend's driver writes from now."""
    import eval.ray_backend

    writes: list[tuple] = []
    real = eval.ray_backend.save_episode

    def counting(out, record, trajectory):
        written = real(out, record, trajectory)
        if written:
            writes.append((record["agent"], record["condition"], record["seed"]))
        return written

    eval.ray_backend.save_episode = counting
    return writes


def kill_busy_node(cluster, out: Path, starts: Path, killed: list) -> None:
    """Once the first chunk is written, wait for a chunk that starts after it and kill its node
    at once, while it runs that chunk."""
    while not any((out / "episodes").rglob("*.json")):
        time.sleep(0.01)
    before, deadline = set(starts.iterdir()), time.monotonic() + 60
    while time.monotonic() < deadline:
        new = [p for p in starts.iterdir() if p not in before and p.read_text()]
        if new:
            busy = new[0].read_text()
            node = next(n for n in cluster.worker_nodes if n.node_id == busy)
            cluster.remove_node(node, allow_graceful=False)
            killed.append(busy)
            return
        time.sleep(0.005)


def _noop() -> None:
    return None


def backends(config, scene, work: Path, repeats: int) -> tuple[dict[str, list[float]], float]:
    """Process pool and local Ray, alternately (the Ray instance started beforehand); then how
    many empty tasks per second this driver gets through Ray."""
    import ray

    ray.init(num_cpus=config.workers, include_dashboard=False, log_to_driver=False)
    times: dict[str, list[float]] = {"process pool": [], "ray (local)": []}
    try:
        for _ in range(repeats):  # alternately, so that both see the same load
            times["process pool"].append(timed(config, work / "pool", scene))
            times["ray (local)"].append(timed(config, work / "ray", scene, ray_address=""))
        noop = ray.remote(_noop)
        ray.get([noop.remote() for _ in range(200)])
        start = time.perf_counter()
        ray.get([noop.remote() for _ in range(2000)])
        tasks_per_s = 2000 / (time.perf_counter() - start)
    finally:
        ray.shutdown()
    return times, tasks_per_s


def on_cluster(config, scene, work: Path) -> dict:
    """The campaign on a 4-node Cluster (rows compared), then again with a node killed."""
    import ray
    from ray.cluster_utils import Cluster

    from eval.rollouts import load_campaign, run_campaign

    starts = work / "starts"
    starts.mkdir()
    os.environ["EVAL_SCALE_STARTS"] = str(starts)  # the nodes inherit it
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    for _ in range(NODES):
        cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    try:
        seconds = timed(config, work / "cluster", scene, ray_address="")
        same = (work / "cluster" / "episodes.csv").read_text() == (
            work / "pool" / "episodes.csv"
        ).read_text()
        killed: list[str] = []
        out = work / "killed"
        killer = threading.Thread(target=kill_busy_node, args=(cluster, out, starts, killed))
        for note in starts.iterdir():
            note.unlink()
        killer.start()
        writes = count_episode_writes()
        start = time.perf_counter()
        run_campaign(config, out, noted_env, show_progress=False, scene=scene, ray_address="")
        kill_seconds = time.perf_counter() - start
        killer.join(timeout=30)
    finally:
        ray.shutdown()
        cluster.shutdown()
    expected = {(a.name, c, s) for a in config.agents for c in CONDITIONS for s in config.seeds}
    records = load_campaign(out).records
    keys = {(r["agent"], r["condition"], r["seed"]) for r in records}
    csv_rows = (out / "episodes.csv").read_text().strip().splitlines()[1:]
    chunks = len(config.agents) * len(CONDITIONS) * -(-len(config.seeds) // 4)
    return {
        "seconds": seconds,
        "same_rows": same,
        "kill_seconds": kill_seconds,
        "killed": bool(killed),
        "lost": len(expected - keys),
        "duplicated": len(writes) - len(set(writes)) + len(csv_rows) - len(set(csv_rows)),
        "rerun_chunks": len(list(starts.iterdir())) - chunks,
        "same_after_kill": (out / "episodes.csv").read_text()
        == (work / "pool" / "episodes.csv").read_text(),
    }


def transfer_costs(scene, work: Path) -> dict:
    """Scene blob size and pack/unpack times; the driver's cost to write one episode."""
    import numpy as np

    from common.folder_blobs import pack_folder, unpack_blob
    from eval.rollouts import load_campaign, save_episode

    start = time.perf_counter()
    blob = pack_folder(scene.root)
    pack = time.perf_counter() - start
    start = time.perf_counter()
    unpack_blob(blob, work / "cache")
    unpack = time.perf_counter() - start
    campaign = load_campaign(work / "pool")
    start = time.process_time()
    for record in campaign.records:
        trajectory = campaign.trajectory(record["agent"], record["condition"], record["seed"])
        save_episode(work / "writes", record, {k: np.asarray(v) for k, v in trajectory.items()})
    write = (time.process_time() - start) / len(campaign.records)  # CPU s: the load aside
    steps = statistics.mean(r["steps"] for r in campaign.records)
    return {
        "mb": len(blob.data) / 1e6,
        "pack": pack,
        "unpack": unpack,
        "write": write,
        "steps": steps,
    }


def estimate(
    episode_core_s: float, costs: dict, tasks_per_s: float, cores: int = 16, nodes: int = 100
) -> str:
    """The 100-node estimate, with its arithmetic, from the measured costs."""
    workers = nodes * cores
    rate = workers / episode_core_s
    driver = 1 / costs["write"]
    per_node = cores / episode_core_s
    limits = {
        "the workers": rate,
        "the driver's writes": driver,
        "task submission": 4 * tasks_per_s,
    }
    slowest = min(limits, key=limits.get)
    mb = costs["mb"]
    return "\n".join(
        [
            f"- Workers: {nodes} nodes x {cores} cores (assumed) = {workers} Ray workers, one "
            "chunk each.",
            f"- Episode cost: {episode_core_s:.3f} core-s per episode (the in-process run "
            f"above: CPU time / episodes), so the workers could run {workers} / "
            f"{episode_core_s:.3f} = {rate:,.0f} episodes/s.",
            f"- Scene transfer: the bundle blob is {mb:.1f} MB, fetched once per node: "
            f"{nodes} x {mb:.1f} MB = {nodes * mb / 1e3:.1f} GB out of the driver's object store "
            f"if every node pulls from it: {nodes * mb / 125:.0f} s at 1 Gbit/s, "
            f"{nodes * mb / 1250:.1f} s at 10 Gbit/s (less when Ray serves later nodes from "
            f"earlier copies); unpacking it costs each node {costs['unpack']:.2f} s, in parallel.",
            f"- Driver: writing one episode's record and trajectory costs {1000 * costs['write']:.1f}"
            f" CPU-ms here, a ceiling of 1 / {costs['write']:.4f} s = {driver:,.0f} episodes/s; "
            f"this driver got {tasks_per_s:,.0f} empty Ray tasks/s through (measured above, on "
            f"this loaded machine), and a chunk is 4 episodes, so {rate:,.0f} episodes/s would "
            f"need {rate / 4:,.0f} chunks/s.",
            f"- Where the bottleneck moves: the smallest of workers {rate:,.0f}, driver writes "
            f"{driver:,.0f} and task submission 4 x {tasks_per_s:,.0f} = {4 * tasks_per_s:,.0f} "
            f"episodes/s is {slowest} ({limits[slowest]:,.0f} episodes/s, "
            f"{limits[slowest] / per_node:.1f} nodes' worth of workers at {per_node:,.0f} "
            "episodes/s per node). On one machine the episodes are the limit; at 100 nodes the one "
            "driver that submits every chunk and writes every episode is, and the scene transfer "
            "is a start-up cost paid once per node. Raising it means larger chunks (fewer tasks) "
            "and one results file per chunk instead of two per episode.",
            f"- Heavier episodes move it back: with {workers} workers the driver's writes stop "
            f"being the limit once an episode costs more than {workers} / {driver:,.0f} = "
            f"{workers / driver:.1f} core-s.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scene", type=Path, default=REPO / "assets" / "scenes" / "bird")
    parser.add_argument("--episodes", type=int, default=40, help="seeds per agent and condition")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each backend")
    args = parser.parse_args()

    from results import load, markdown_table, tee, write_section

    from scene_builder.bundle import load_scene

    load_at_start = load()
    scene = load_scene(args.scene)
    config = campaign_config(scene, args.episodes, args.workers)
    episodes = len(config.agents) * len(CONDITIONS) * args.episodes
    with tempfile.TemporaryDirectory(prefix="eval-scale-") as tmp:
        work = Path(tmp)
        serial = dataclasses.replace(config, workers=1)
        cpu = time.process_time()
        in_process = timed(serial, work / "serial", scene)  # the per-episode cost, no start-up
        in_process_cpu = time.process_time() - cpu
        times, tasks_per_s = backends(config, scene, work, args.repeats)
        cluster = on_cluster(config, scene, work)
        costs = transfer_costs(scene, work)
    best = {name: min(values) for name, values in times.items()}
    overhead = best["ray (local)"] / best["process pool"] - 1
    first = times["ray (local)"][0] / times["process pool"][0] - 1
    rows = [
        [
            name,
            args.workers,
            episodes,
            " / ".join(f"{t:.1f}" for t in values),
            episodes / best[name],
        ]
        for name, values in times.items()
    ]
    rows.insert(0, ["in this process", 1, episodes, f"{in_process:.1f}", episodes / in_process])
    rows.append([f"ray Cluster, {NODES} nodes", NODES, episodes, f"{cluster['seconds']:.1f}",
                 episodes / cluster["seconds"]])  # fmt: skip
    episode_core_s = in_process_cpu / episodes
    with tee() as printed:
        print(f"Campaign: {scene.name}, expert + random x {', '.join(CONDITIONS)} x "
              f"{args.episodes} seeds = {episodes} episodes (state observations, "
              f"{costs['steps']:.0f} steps per episode on average).\n")  # fmt: skip
        header = ["backend", "workers", "episodes", "wall s (each run)", "episodes/s (best)"]
        print(markdown_table(header, rows))
        print(f"\nRay overhead against the process pool: {first:+.0%} on the first runs (both "
              f"start their workers' imports cold), {overhead:+.0%} on the best runs (Ray keeps "
              "its workers, and their imports, between campaigns; a pool starts afresh); "
              "target <= +15%.")  # fmt: skip
        print(
            f"{NODES}-node Cluster rows identical to the process backend's: {cluster['same_rows']}."
        )
        print(f"Node killed mid-campaign: {cluster['killed']}; episodes lost: {cluster['lost']}, "
              f"written twice: {cluster['duplicated']}; chunks run again: {cluster['rerun_chunks']}; "
              f"rows identical after the kill: {cluster['same_after_kill']} "
              f"({cluster['kill_seconds']:.1f} s).\n")  # fmt: skip
        print(f"Scene blob: {costs['mb']:.1f} MB, packed in {costs['pack']:.2f} s, unpacked in "
              f"{costs['unpack']:.2f} s.\n")  # fmt: skip
        print("### 100 nodes: an estimate from these measurements\n")
        print(estimate(episode_core_s, costs, tasks_per_s))
    write_section("eval_scale", printed.getvalue(), load_at_start=load_at_start)


if __name__ == "__main__":
    main()
