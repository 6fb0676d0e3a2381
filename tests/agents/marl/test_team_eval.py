"""`driveenv evaluate` and `driveenv report` on a team: records per condition, the team section."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
BIRD = REPO / "assets" / "scenes" / "bird"
CONDITIONS = ("capture", "dim")


@pytest.fixture(scope="module")
def team_run(tmp_path_factory) -> Path:
    """A QMIX team of two robots on the bird arena, trained for a few episodes."""
    from agents.marl.train import train_marl
    from agents.train import TrainConfig

    config = TrainConfig(
        algorithm="qmix",
        scene=str(BIRD),
        obs="state",
        steps=60,
        checkpoint_every=60,
        eval_episodes=1,
        max_episode_steps=15,
        hyperparameters={"batch_size": 2},
        env_options={"agents": 2},
    )
    run_dir = tmp_path_factory.mktemp("teams") / "qmix-team"
    train_marl(config, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def team_eval(team_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("team-eval") / "eval"
    command = [
        sys.executable, "-m", "driveenv.cli", "evaluate", str(team_run), "--scene", str(BIRD),
        "--lighting", ",".join(CONDITIONS), "--episodes", "3", "--out", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


@pytest.mark.slow
def test_evaluate_on_a_team_writes_team_records_per_condition(team_eval, team_run):
    from eval.team_records import TEAM_COLUMNS

    with open(team_eval / "team_episodes.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(CONDITIONS) * 3
    assert {r["condition"] for r in rows} == set(CONDITIONS)
    assert all(r["agent"] == team_run.name and r["robots"] == "2" for r in rows)
    for column in TEAM_COLUMNS:
        assert all(r[column] != "" for r in rows), column
    for condition in CONDITIONS:
        for seed in range(3):
            folder = team_eval / "episodes" / team_run.name / condition
            record = json.loads((folder / f"seed_{seed}.json").read_text())
            # the single-agent columns read for the team, so the rest of the report holds
            assert record["success"] == (record["arrived"] == 2) == record["team_success"]
            assert record["route_completion"] == record["arrived"] / 2
            collided = record["robot_collision"] or record["scene_collision"]
            assert record["collision"] == collided
            with np.load(folder / f"seed_{seed}.npz") as path:
                assert path["x"].shape == (record["steps"] + 1, 2) == path["y"].shape
                assert path["goals"].shape == (2, 2)
                assert np.isfinite(path["x"][0]).all()
    # an episode seed fixes its spawns and goals, whatever ran before (so a resume replays it)
    first = json.loads((team_eval / "episodes" / team_run.name / "dim" / "seed_0.json").read_text())
    limit = json.loads((team_eval / "campaign.json").read_text())["max_episode_steps"]
    again = _rerun(team_run, seed=0, limit=limit)
    assert again["steps"] == first["steps"] and again["arrived"] == first["arrived"]


def _rerun(team_run, seed, limit):
    from eval.rollouts import CampaignConfig, agent_specs
    from eval.team_records import make_team_env, run_team_episode
    from scene_builder.bundle import load_scene

    scene = load_scene(BIRD)
    config = CampaignConfig(
        BIRD, agent_specs([str(team_run)]), ["dim"], [seed], max_episode_steps=limit
    )
    env, driver = make_team_env(config, config.agents[0], "dim", scene)
    try:
        env.reset(seed=123, options={"task_seed": 5})  # another episode first
        return run_team_episode(env, driver, seed)[0]
    finally:
        env.close()


@pytest.mark.slow
def test_report_shows_team_success_collisions_and_the_robots_on_the_map(team_eval, tmp_path):
    from eval.report import ReportConfig, write_report
    from eval.rollouts import load_campaign

    html = write_report(
        ReportConfig(sim=team_eval, scene=BIRD, out=tmp_path / "report", fidelity=False)
    ).read_text()
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    campaign = load_campaign(team_eval)
    assert [(r["condition"], r["robots"]) for r in summary["teams"]] == [(c, 2) for c in CONDITIONS]
    for row in summary["teams"]:
        records = [r for r in campaign.records if r["condition"] == row["condition"]]
        assert row["team_success"]["successes"] == sum(r["team_success"] for r in records)
        assert row["robot_collision"]["successes"] == sum(r["robot_collision"] for r in records)
        assert row["team_success"]["n"] == 3
    assert "Teams of robots" in html and "robot-robot collision" in html
    assert html.count('alt="trajectories of every robot of') == 1


def test_a_map_draws_every_robot_path(tmp_path):
    """The map differs when a robot's path is removed: each robot's trajectory is drawn."""
    import base64

    import cv2

    from eval.report_team import team_map
    from scene_builder.bundle import load_scene

    drivable = load_scene(BIRD).drivable
    low, high = drivable.drivable_bounds()
    t = np.linspace(0.2, 0.8, 30)[:, None]
    x = low[0] + (high[0] - low[0]) * np.hstack([t, t])
    y = low[1] + (high[1] - low[1]) * np.hstack([t, 1 - t])
    goals = np.stack([[x[-1, 0], y[-1, 0]], [x[-1, 1], y[-1, 1]]])
    both = team_map(drivable, {"x": x, "y": y, "goals": goals}, "two")
    x_one = x.copy()
    x_one[1:, 1] = np.nan  # robot 1 leaves after its first step
    one = team_map(drivable, {"x": x_one, "y": y, "goals": goals}, "two")

    def pixels(png):
        return cv2.imdecode(np.frombuffer(base64.b64decode(png), np.uint8), cv2.IMREAD_COLOR)

    difference = np.abs(pixels(both).astype(int) - pixels(one).astype(int)).sum(-1) > 60
    assert difference.sum() > 200  # the second robot's path, only in the first map


@pytest.mark.slow
def test_a_campaign_mixing_teams_and_single_agents_is_refused(team_run):
    from eval.errors import CampaignError
    from eval.rollouts import agent_specs
    from eval.team_records import team_agents

    assert team_agents(agent_specs([str(team_run)])) is True
    assert team_agents(agent_specs(["expert"])) is False
    with pytest.raises(CampaignError, match="campaign of their own"):
        team_agents(agent_specs([str(team_run), "expert"]))
