"""Campaigns: same seeded episodes for every agent, parallel workers, resume, scene identity.

The environment is the point robot of tests/eval/fakes.py: the campaign machinery is under test.
"""

from __future__ import annotations

import csv
import dataclasses

import pytest

from common.seeds import SeedsError, parse_seed_list
from eval.errors import CampaignError
from eval.rollouts import (
    AgentSpec,
    CampaignConfig,
    agent_specs,
    episode_paths,
    load_campaign,
    make_policy,
    make_sim_env,
    run_campaign,
)
from scene_builder.bundle import load_scene
from scene_builder.synthetic import make_synthetic_scene
from tests.eval.fakes import CALLS, count_verified_loads, point_env, scripted_policy


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return load_scene(make_synthetic_scene(tmp_path_factory.mktemp("rollouts") / "scene", seed=0))


def config(scene, seeds=(0, 1, 2), workers=1):
    agents = [AgentSpec("good", "toward"), AgentSpec("bad", "away")]
    return CampaignConfig(scene.root, agents, ["capture", "dim"], list(seeds), workers=workers)


def run(cfg, out, scene):
    return run_campaign(cfg, out, point_env, scripted_policy, show_progress=False, scene=scene)


@pytest.fixture
def verified_loads(monkeypatch):
    return count_verified_loads(monkeypatch)


def test_campaign_loads_its_scene_once(scene, tmp_path, verified_loads):
    """2 agents x 2 conditions x 6 seeds in chunks of 4: 8 environments, one scene load."""
    agents = [AgentSpec("expert", "expert"), AgentSpec("random", "random")]
    cfg = CampaignConfig(
        scene.root, agents, ["capture", "dim"], list(range(6)), max_episode_steps=3
    )
    campaign = run_campaign(cfg, tmp_path / "by_path", make_sim_env, make_policy, False)
    assert len(campaign.records) == 24 and len(verified_loads) == 1
    assert campaign.meta["scene"] == scene.identity()
    verified_loads.clear()
    run_campaign(cfg, tmp_path / "by_bundle", make_sim_env, make_policy, False, scene=scene)
    assert verified_loads == []  # a loaded bundle is used as it is


def test_campaign_records_every_agent_condition_seed_in_parallel(scene, tmp_path):
    out = tmp_path / "eval"
    campaign = run(config(scene, seeds=range(5), workers=2), out, scene)
    assert len(campaign.records) == 2 * 2 * 5
    rows = list(csv.DictReader((out / "episodes.csv").open()))
    assert len(rows) == 20 and {"agent", "condition", "seed", "success", "path_length"} <= set(
        rows[0]
    )
    assert campaign.outcomes("good", "capture").all() and not campaign.outcomes("bad").any()
    # every agent faces the same episodes: same start pose for the same seed
    for seed in range(5):
        starts = {a: campaign.trajectory(a, "capture", seed)["x"][0] for a in ("good", "bad")}
        assert starts["good"] == starts["bad"]
    good = [r for r in campaign.records if r["agent"] == "good" and r["condition"] == "capture"]
    assert all(r["path_length"] > 0 and r["duration"] == r["steps"] for r in good)
    meta = load_campaign(out).meta
    assert meta["scene"] == scene.identity() and meta["agents"] == {"good": "toward", "bad": "away"}


def test_resume_runs_only_missing_episodes(scene, tmp_path):
    out = tmp_path / "eval"
    run(config(scene), out, scene)
    episode_paths(out, "good", "dim", 1)[0].unlink()
    CALLS.clear()
    campaign = run(config(scene, seeds=(0, 1, 2, 3)), out, scene)
    # only the deleted episode and the new seed 3 (both agents, both conditions) run again
    expected = [("good", 1)] + [("good", 3), ("bad", 3)] * 2
    assert sorted(CALLS) == sorted(expected)
    assert len(campaign.records) == 16


def test_other_scene_is_refused(scene, tmp_path):
    out = tmp_path / "eval"
    run(config(scene, seeds=(0,)), out, scene)
    other = dataclasses.replace(scene, name="elsewhere", scene_sha256="b" * 64)
    with pytest.raises(CampaignError, match=f"run on scene '{scene.name}'"):
        run(config(scene), out, other)
    with pytest.raises(CampaignError, match="sha256"):
        load_campaign(out).check_scene(other)


def test_parse_seeds_and_agent_names(tmp_path):
    assert parse_seed_list("0-3,7") == [0, 1, 2, 3, 7]
    with pytest.raises(SeedsError, match="--seeds 'a'"):
        parse_seed_list("a")
    (tmp_path / "x" / "ppo").mkdir(parents=True)
    (tmp_path / "y" / "ppo").mkdir(parents=True)
    assert [s.name for s in agent_specs([str(tmp_path / "x" / "ppo"), "random"])] == [
        "ppo",
        "random",
    ]
    with pytest.raises(CampaignError, match="share the name ppo"):
        agent_specs([str(tmp_path / "x" / "ppo"), str(tmp_path / "y" / "ppo")])
    with pytest.raises(CampaignError, match="no such run folder"):
        agent_specs([str(tmp_path / "missing")])
    with pytest.raises(CampaignError, match="not found"):
        load_campaign(tmp_path)


def test_evaluate_command_on_the_real_simulator(tmp_path, capsys):
    from driveenv.cli import main
    from scene_builder.synthetic import make_synthetic_scene

    scene = str(make_synthetic_scene(tmp_path / "scene", seed=0))
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "random",
        "expert",
        "--scene",
        scene,
        "--episodes",
        "2",
        "--max-episode-steps",
        "15",
    ]
    assert main([*args, "--lighting", "capture,dim", "--out", str(out)]) == 0
    campaign = load_campaign(out)
    assert len(campaign.records) == 8 and campaign.meta["max_episode_steps"] == 15
    record = campaign.records[0]
    assert 1 <= record["steps"] <= 15 and record["duration"] > 0
    assert len(campaign.trajectory("random", "capture", 0)["x"]) == record["steps"] + 1
    for seed in (0, 1):  # both agents start each seeded episode at the same pose
        starts = [campaign.trajectory(a, "dim", seed) for a in ("random", "expert")]
        assert starts[0]["x"][0] == starts[1]["x"][0] and starts[0]["yaw"][0] == starts[1]["yaw"][0]
    expert = campaign.outcomes("expert", key="path_length")
    assert expert.min() > 0
    assert main([*args, "--lighting", "sunset", "--out", str(tmp_path / "e2")]) == 1
    assert "--lighting sunset: not a preset" in capsys.readouterr().err
    assert main([*args, "--task", "route", "--out", str(out)]) == 1
    assert "earlier episodes used task=goal" in capsys.readouterr().err
