"""Campaigns: same seeded episodes for every agent, parallel workers, resume, scene identity.

The environment here is a tiny point robot on a synthetic scene's drivable map (the simulator's
own tests cover the real env); the campaign machinery is what is under test.
"""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest

from eval.errors import CampaignError
from eval.rollouts import (
    AgentSpec,
    CampaignConfig,
    agent_specs,
    episode_paths,
    load_campaign,
    parse_seeds,
    run_campaign,
)

SCENE_ID = {"name": "toy", "path": "/toy", "sha256": "a" * 64}
CALLS: list[tuple[str, str, int]] = []


class PointRobot(gym.Env):
    """Moves by its action; succeeds within 0.1 of the goal; 'dim' makes it slower."""

    def __init__(self, speed: float):
        self.speed = speed
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.observation_space = gym.spaces.Box(-10, 10, (4,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.xy = self.np_random.uniform(-1, 1, 2)
        self.goal = self.np_random.uniform(-1, 1, 2)
        self.steps = 0
        return self._obs(), {"pose": (*self.xy, 0.0)}

    def _obs(self):
        return np.concatenate([self.xy, self.goal]).astype(np.float32)

    def step(self, action):
        self.xy = self.xy + self.speed * np.clip(action, -1, 1)
        self.steps += 1
        success = bool(np.linalg.norm(self.xy - self.goal) < 0.1)
        off = bool(np.abs(self.xy).max() > 2)
        info = {"pose": (*self.xy, 0.0), "success": success, "off_road": off, "collision": False}
        return self._obs(), float(success), success or off, self.steps >= 40, info


def point_env(config, agent, condition):
    return PointRobot(speed=0.1 if condition == "capture" else 0.03)


def scripted_policy(agent, env, seed):
    """'toward' drives at the goal, 'away' drives off: a good and a bad agent."""
    CALLS.append((agent.name, "", seed))
    sign = 1.0 if agent.source == "toward" else -1.0

    def act(obs):
        direction = obs[2:] - obs[:2]
        return sign * direction / max(np.linalg.norm(direction), 1e-6)

    return act


def config(tmp_path, seeds=(0, 1, 2), workers=1):
    agents = [AgentSpec("good", "toward"), AgentSpec("bad", "away")]
    return CampaignConfig(
        tmp_path / "scene", agents, ["capture", "dim"], list(seeds), workers=workers
    )


def run(cfg, out):
    return run_campaign(
        cfg, out, point_env, scripted_policy, show_progress=False, scene_id=SCENE_ID
    )


def test_campaign_records_every_agent_condition_seed_in_parallel(tmp_path):
    out = tmp_path / "eval"
    campaign = run(config(tmp_path, seeds=range(5), workers=2), out)
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
    assert meta["scene"] == SCENE_ID and meta["agents"] == {"good": "toward", "bad": "away"}


def test_resume_runs_only_missing_episodes(tmp_path):
    out = tmp_path / "eval"
    run(config(tmp_path), out)
    episode_paths(out, "good", "dim", 1)[0].unlink()
    CALLS.clear()
    campaign = run(config(tmp_path, seeds=(0, 1, 2, 3)), out)
    # only the deleted episode and the new seed 3 (both agents, both conditions) run again
    expected = [("good", "", 1)] + [("good", "", 3), ("bad", "", 3)] * 2
    assert sorted(CALLS) == sorted(expected)
    assert len(campaign.records) == 16


def test_other_scene_is_refused(tmp_path):
    out = tmp_path / "eval"
    run(config(tmp_path, seeds=(0,)), out)
    other = {**SCENE_ID, "name": "elsewhere", "path": "/elsewhere", "sha256": "b" * 64}
    with pytest.raises(CampaignError, match="run on scene 'toy'"):
        run_campaign(
            config(tmp_path), out, point_env, scripted_policy, show_progress=False, scene_id=other
        )


def test_parse_seeds_and_agent_names(tmp_path):
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    with pytest.raises(CampaignError, match="--seeds 'a'"):
        parse_seeds("a")
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
