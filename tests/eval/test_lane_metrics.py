"""Route campaigns on a road record lane keeping per episode and show it in the report."""

from __future__ import annotations

import csv
import json

import pytest

from eval.report import ReportConfig, write_report
from eval.rollouts import AgentSpec, CampaignConfig, make_policy, make_sim_env, run_campaign
from scene_builder.bundle import load_scene
from scene_builder.synthetic import make_synthetic_road


@pytest.fixture(scope="module")
def road(tmp_path_factory):
    return load_scene(make_synthetic_road(tmp_path_factory.mktemp("lane") / "road", seed=0))


def _campaign(road, out, task):
    agents = [AgentSpec("expert", "expert"), AgentSpec("random", "random")]
    cfg = CampaignConfig(
        road.root, agents, ["capture"], [0, 1, 2], task=task, spawn="random", max_episode_steps=80
    )
    return run_campaign(cfg, out, make_sim_env, make_policy, False, scene=road)


def test_route_episodes_record_lateral_deviation_and_the_report_shows_it(road, tmp_path):
    campaign = _campaign(road, tmp_path / "eval", "route")
    for record in campaign.records:
        assert 0.0 <= record["mean_lateral_deviation"] <= record["max_lateral_deviation"]
    expert = [r for r in campaign.records if r["agent"] == "expert"]
    assert all(r["success"] and r["max_lateral_deviation"] < 1.5 for r in expert)
    rows = list(csv.DictReader((tmp_path / "eval" / "episodes.csv").open()))
    assert all(float(row["max_lateral_deviation"]) >= 0.0 for row in rows)

    html = write_report(
        ReportConfig(sim=tmp_path / "eval", scene=road, out=tmp_path / "report", fidelity=False)
    )
    summary = json.loads((html.parent / "summary.json").read_text())
    by_agent = {row["agent"]: row for row in summary["per_condition"]}
    expected = max(r["max_lateral_deviation"] for r in expert)
    assert by_agent["expert"]["sim_max_lateral_deviation"] == pytest.approx(expected)
    assert "lateral deviation, mean / max" in html.read_text()


def test_goal_episodes_leave_the_lane_columns_empty(road, tmp_path):
    campaign = _campaign(road, tmp_path / "eval", "goal")
    assert not any("max_lateral_deviation" in r for r in campaign.records)
    rows = list(csv.DictReader((tmp_path / "eval" / "episodes.csv").open()))
    assert all(row["max_lateral_deviation"] == "" for row in rows)
