"""Training sweeps (``driveenv train ALGO ... --seeds``): one run folder per seed, a pooled success
rate, resume by seed, refusals. The Ray path is tested on a Cluster in tests/eval/test_ray_cluster.py."""

from __future__ import annotations

import json
import shutil

import pytest

import agents.sweep as sweep_module
from agents.errors import AgentError
from agents.sweep import pooled, sweep_table
from common.seeds import SeedsError, parse_seed_list
from driveenv.cli import main

SMALL_PPO = ["--hp", "n_steps=32", "--hp", "batch_size=32", "--hp", "n_epochs=1"]


def _args(scene, out, seeds, steps=32, *extra):
    return [
        "train", "ppo", "--scene", str(scene), "--obs", "state", "--steps", str(steps),
        "--checkpoint-every", "32", "--eval-episodes", "1", "--max-episode-steps", "15",
        "--out", str(out), "--seeds", seeds, "--sweep-episodes", "3", *SMALL_PPO, *extra,
    ]  # fmt: skip


@pytest.fixture
def trained_seeds(monkeypatch):
    seeds: list[int] = []
    real = sweep_module.run_seed

    def counting(config, *args, **kwargs):
        seeds.append(config.seed)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(sweep_module, "run_seed", counting)
    return seeds


def test_sweep_trains_each_seed_pools_and_resumes(tmp_path, synthetic_scene, trained_seeds, capsys):
    out = tmp_path / "sweep"
    assert main(_args(synthetic_scene, out, "0-1")) == 0
    state = json.loads((out / "sweep.json").read_text())
    assert trained_seeds == [0, 1] and sorted(state["seeds"]) == ["0", "1"]
    for seed in (0, 1):
        run = json.loads((out / f"seed_{seed}" / "run.json").read_text())
        assert run["seed"] == seed and run["status"] == "done"
        assert state["seeds"][str(seed)]["episodes"] == 3
    table = capsys.readouterr().out
    total = pooled(state)
    assert total["episodes"] == 6
    assert total["successes"] == sum(r["successes"] for r in state["seeds"].values())
    assert f"| all 2 | - | {total['successes']}/6 " in table

    assert main(_args(synthetic_scene, out, "0-2")) == 0  # seed 2 added: only it trains
    assert trained_seeds == [0, 1, 2]
    assert "| all 3 |" in capsys.readouterr().out

    assert main(_args(synthetic_scene, out, "0-2", 64)) == 1  # another configuration
    assert "--overwrite" in capsys.readouterr().err


def test_pooled_counts_every_seeds_episodes():
    state = {
        "seeds": {
            "0": {"steps": 1, "episodes": 40, "successes": 30, "mean_return": 1.0},
            "1": {"steps": 1, "episodes": 40, "successes": 10, "mean_return": 0.0},
        }
    }
    total = pooled(state)
    assert (total["successes"], total["episodes"], total["success_rate"]) == (40, 80, 0.5)
    assert total["ci_low"] < 0.5 < total["ci_high"]
    single = pooled({"seeds": {"0": state["seeds"]["0"]}})
    assert total["ci_high"] - total["ci_low"] < single["ci_high"] - single["ci_low"]
    lines = sweep_table(state).splitlines()
    assert lines[2].startswith("| 0 |") and lines[-1].startswith("| all 2 | - | 40/80 (50%)")


def test_seed_lists():
    assert parse_seed_list("0-3,7") == [0, 1, 2, 3, 7]
    for bad, message in (("a", "expected integers"), ("1,1", "repeats"), (",", "names no seed")):
        with pytest.raises(SeedsError, match=message):
            parse_seed_list(bad)


def test_ray_without_seeds_is_refused(tmp_path, synthetic_scene, capsys):
    args = _args(synthetic_scene, tmp_path / "run", "0")
    args = args[: args.index("--seeds")] + ["--ray"]
    assert main(args) == 1
    assert "--ray runs a sweep: give the seeds" in capsys.readouterr().err
    with pytest.raises(AgentError, match="episodes=0"):
        sweep_module.sweep(sweep_module.TrainConfig("ppo", str(synthetic_scene)), [0], tmp_path, 0)


def test_the_readme_ray_commands_parse():
    import shlex

    from driveenv.cli import build_parser

    def parse(command: str):
        return build_parser().parse_args(shlex.split(command))

    evaluate = parse(
        "evaluate runs/ppo expert --scene assets/scenes/bird --episodes 200 "
        "--lighting capture,dim --out runs/eval --ray auto"
    )
    train = parse(
        "train tdil --scene runs/synthetic --demos runs/demos.npz --steps 6000 "
        "--out runs/tdil-sweep --seeds 0-7 --ray auto"
    )
    assert (evaluate.ray, train.ray, train.seeds) == ("auto", "auto", "0-7")
    assert parse("evaluate expert --scene s --out o --ray").ray == ""  # a local Ray instance
    assert parse("evaluate expert --scene s --out o").ray is None  # the process pool


def test_a_node_trains_on_its_copies_and_the_run_names_the_users_files(
    tmp_path, synthetic_scene, expert_demos, monkeypatch
):
    """What a Ray worker does for one seed, here in-process: scene and demonstrations come from
    the node's blob cache, yet the returned run.json names the files on the user's disk."""
    from agents.sweep import _remote_seed
    from agents.train import TrainConfig
    from common.folder_blobs import CACHE_ENV, Blob, pack_folder, restore_folder, unpack_blob
    from common.ray_cluster import SharedFolder

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    user = tmp_path / "user"  # the driver's disk, gone by the time the node trains
    scene, demos = user / "scene", user / "demos" / "demos.npz"
    shutil.copytree(synthetic_scene, scene)
    demos.parent.mkdir()
    shutil.copy(expert_demos[0], demos)
    shared = []
    for folder, files in ((scene, None), (demos.parent, [demos.name])):
        blob = pack_folder(folder, files)
        unpack_blob(blob)  # already on this node: no fetch (ref None would fail)
        shared.append(SharedFolder(blob.digest, None, len(blob.data)))
    shutil.rmtree(user)
    config = TrainConfig(
        algorithm="bc", scene=str(scene), demos=str(demos), steps=20, seed=3,
        checkpoint_every=20, eval_episodes=1, max_episode_steps=15,
    )  # fmt: skip
    result, digest, data = _remote_seed(config, shared[0], shared[1], episodes=2)
    run_dir = restore_folder(Blob(digest, data), tmp_path / "sweep" / "seed_3")
    run = json.loads((run_dir / "run.json").read_text())
    assert run["config"]["demos"] == str(demos) and run["scene"] == str(scene)
    assert run["seed"] == 3 and result["seed"] == 3 and result["episodes"] == 2
    assert (run_dir / run["checkpoint"]).is_file()
