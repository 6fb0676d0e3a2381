"""Campaigns and training sweeps on a Ray cluster: several Ray nodes on this machine
(``ray.cluster_utils.Cluster``), the head without CPUs so that every task runs on a worker node.

What must hold: the Ray backend writes the same episodes as the process backend, row for row;
it resumes; scene and agent folders reach the nodes through the blob cache; a node killed while
it runs a chunk loses no episode and duplicates none; a sweep's seeds come back as the run
folders the local sweep writes.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from agents.sweep import SWEEP_FILE, sweep
from agents.train import TrainConfig
from common.folder_blobs import CACHE_ENV, pack_folder
from eval.rollouts import (
    AgentSpec,
    CampaignConfig,
    agent_specs,
    episode_paths,
    load_campaign,
    run_campaign,
    save_episode,
)
from scene_builder.bundle import load_scene
from scene_builder.synthetic import make_synthetic_scene
from tests.eval.fakes import PointRobot, point_env, scripted_policy

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a Ray cluster starts in about 20 s: make test, not test-fast

STARTS_ENV = "DRIVEENV_TEST_CHUNK_STARTS"  # where slow_point_env notes each chunk it starts


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ray import cloudpickle
    from ray.cluster_utils import Cluster

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers import no tests
    cache, starts = tmp_path_factory.mktemp("blob-cache"), tmp_path_factory.mktemp("starts")
    saved = {name: os.environ.get(name) for name in (CACHE_ENV, STARTS_ENV)}
    os.environ.update({CACHE_ENV: str(cache), STARTS_ENV: str(starts)})  # the nodes inherit it
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    try:
        yield SimpleNamespace(cluster=cluster, cache=cache, starts=starts)
    finally:
        ray.shutdown()
        cluster.shutdown()
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.update({name: value})


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return load_scene(make_synthetic_scene(tmp_path_factory.mktemp("ray") / "scene", seed=0))


def tiny_ppo(scene) -> TrainConfig:
    return TrainConfig(
        algorithm="ppo", scene=str(scene.root), obs="state", steps=64, checkpoint_every=64,
        eval_episodes=1, max_episode_steps=15,
        hyperparameters={"n_steps": 32, "batch_size": 32, "n_epochs": 1},
    )  # fmt: skip


@pytest.fixture(scope="module")
def swept(cluster, scene, tmp_path_factory):
    """Two seeds of a tiny PPO, one Ray task each."""
    out = tmp_path_factory.mktemp("sweep") / "ppo"
    return out, sweep(tiny_ppo(scene), [0, 1], out, episodes=3, ray_address="")


def test_sweep_seeds_come_back_as_the_local_run_folders(swept, scene, tmp_path):
    out, state = swept
    local = sweep(tiny_ppo(scene), [0], tmp_path / "local", episodes=3)
    assert state["seeds"]["0"] == local["seeds"]["0"]  # same training, same evaluation
    assert sorted(state["seeds"]) == ["0", "1"] and (out / SWEEP_FILE).is_file()
    for seed in (0, 1):
        run = (out / f"seed_{seed}" / "run.json").read_text()
        assert '"status": "done"' in run and f'"seed": {seed}' in run
        assert f'"scene": "{scene.root}"' in run  # the user's path, not the node's cache
        assert (out / f"seed_{seed}" / "agent.zip").is_file()


def test_campaign_rows_match_the_process_backend_and_resume(cluster, swept, scene, tmp_path):
    run_dir = swept[0] / "seed_0"
    agents = agent_specs(["expert", "random", str(run_dir)])
    config = CampaignConfig(
        scene.root, agents, ["capture", "dim"], list(range(5)), max_episode_steps=15
    )
    local = run_campaign(config, tmp_path / "local", show_progress=False, scene=scene)
    remote = run_campaign(config, tmp_path / "ray", show_progress=False, ray_address="")
    expected = (tmp_path / "local" / "episodes.csv").read_text()
    assert (tmp_path / "ray" / "episodes.csv").read_text() == expected
    assert len(remote.records) == 3 * 2 * 5 and remote.meta == local.meta
    for record in local.records:
        key = (record["agent"], record["condition"], record["seed"])
        for axis, values in local.trajectory(*key).items():
            np.testing.assert_array_equal(remote.trajectory(*key)[axis], values)
    # the scene and the agent's run.json + checkpoint went to the nodes as blobs, by hash
    cached = {p.name for p in cluster.cache.iterdir()}
    assert pack_folder(scene.root).digest in cached
    assert pack_folder(run_dir, ["run.json", "agent.zip"]).digest in cached

    gone = episode_paths(tmp_path / "ray", "seed_0", "dim", 3)
    kept = episode_paths(tmp_path / "ray", "random", "capture", 1)[0]
    before = kept.stat().st_mtime_ns
    for path in gone:
        path.unlink()
    run_campaign(config, tmp_path / "ray", show_progress=False, ray_address="")
    assert (tmp_path / "ray" / "episodes.csv").read_text() == expected
    assert gone[0].is_file() and kept.stat().st_mtime_ns == before  # only the missing one ran


def slow_point_env(config, agent, condition, scene):
    """The point robot, 0.4 s per episode, noting which node started the chunk."""
    note = Path(os.environ[STARTS_ENV]) / f"{agent.name}.{condition}.{uuid.uuid4().hex}"
    note.write_text(ray.get_runtime_context().get_node_id())

    class Slow(PointRobot):
        def reset(self, seed=None, options=None):
            time.sleep(0.4)
            return super().reset(seed=seed, options=options)

    return Slow(speed=0.05 if condition == "capture" else 0.025)


def kill_a_busy_node(cluster, out: Path, done: threading.Event) -> None:
    """Once the first chunk is written, wait for a chunk that starts after it and kill its node
    at once: that chunk (1.6 s) is running then."""
    while not any((out / "episodes").rglob("*.json")):
        time.sleep(0.02)
    before, deadline = set(cluster.starts.iterdir()), time.monotonic() + 30
    while time.monotonic() < deadline:
        new = [p for p in cluster.starts.iterdir() if p not in before and p.read_text()]
        if new:
            busy = new[0].read_text()
            node = next(n for n in cluster.cluster.worker_nodes if n.node_id == busy)
            cluster.cluster.remove_node(node, allow_graceful=False)
            done.set()
            return
        time.sleep(0.01)


def test_a_node_killed_mid_campaign_loses_and_duplicates_no_episode(cluster, scene, tmp_path):
    cluster.cluster.add_node(num_cpus=1)  # three workers; one dies below
    cluster.cluster.wait_for_nodes()
    agents = [AgentSpec("good", "toward"), AgentSpec("bad", "away")]
    config = CampaignConfig(scene.root, agents, ["capture", "dim"], list(range(8)))
    out, killed = tmp_path / "ray", threading.Event()
    killer = threading.Thread(target=kill_a_busy_node, args=(cluster, out, killed), daemon=True)
    killer.start()
    campaign = run_campaign(
        config, out, slow_point_env, scripted_policy, show_progress=False, ray_address=""
    )
    killer.join(timeout=5)
    assert killed.is_set()
    # 8 chunks started, and the one on the killed node again elsewhere
    assert len(list(cluster.starts.iterdir())) > 8
    run_campaign(config, tmp_path / "local", point_env, scripted_policy, False, scene)
    keys = [(r["agent"], r["condition"], r["seed"]) for r in campaign.records]
    assert len(keys) == len(set(keys)) == 2 * 2 * 8  # none lost, none twice
    assert (out / "episodes.csv").read_text() == (tmp_path / "local" / "episodes.csv").read_text()
    record = dict(campaign.records[0], success=not campaign.records[0]["success"])
    assert not save_episode(out, record, {"x": np.zeros(1)})  # a late duplicate is not written
    assert load_campaign(out).records == campaign.records


def test_a_chunk_runs_on_the_nodes_copies_alone(swept, scene, tmp_path, monkeypatch):
    """What a worker does for one chunk, here in-process, after the user's files are gone."""
    import shutil

    from common.folder_blobs import unpack_blob
    from common.ray_cluster import SharedFolder
    from eval.ray_backend import _remote_chunk, agent_files
    from eval.rollouts import _Chunk, make_policy, make_sim_env

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    user = tmp_path / "user"
    shutil.copytree(scene.root, user / "scene")
    shutil.copytree(swept[0] / "seed_0", user / "ppo")
    copy = load_scene(user / "scene")
    agent = agent_specs([str(user / "ppo")])[0]
    shared = []
    for folder, files in ((copy.root, None), (user / "ppo", agent_files(agent))):
        blob = pack_folder(folder, files)
        unpack_blob(blob)
        shared.append(SharedFolder(blob.digest, None, len(blob.data)))
    config = CampaignConfig(copy.root, [agent], ["dim"], [0, 1], max_episode_steps=15)
    chunk = _Chunk(config, None, tmp_path / "out", agent, "dim", (0, 1), make_sim_env, make_policy)
    shutil.rmtree(user)
    episodes = _remote_chunk(chunk, copy, *shared)
    assert [record["seed"] for record, _ in episodes] == [0, 1]
    assert all(record["agent"] == "ppo" and record["steps"] >= 1 for record, _ in episodes)
