"""The demo end to end, as `make demo` runs it: shipped bird scene -> four agents -> two
campaigns (field and mesh camera) -> report; then the numbers that make it worth running.

What must hold: the privileged expert solves at least 95% of the demo's episodes under both
cameras (else the episodes, not the agents, are what the table measures), and every trained
agent beats a random policy driven over the same seeded episodes (else training did nothing
the table could show). The random baseline is measured here with the library's campaign runner
on the demo's own episode list, read from its campaign.json. A second run resumes and changes
nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from driveenv import cli
from eval.rollouts import CampaignConfig, agent_specs, load_campaign, run_campaign

REPO = Path(__file__).resolve().parents[2]
TRAINED = {"sac", "ppo", "diffusion", "bc"}
RENDERERS = ("field", "mesh")


def _random_baseline(campaign_dir, out) -> float:
    """Success rate of uniform random actions on the campaign's own scene and episodes."""
    meta = load_campaign(campaign_dir).meta
    config = CampaignConfig(
        scene=meta["scene"]["path"],
        agents=agent_specs(["random"]),
        conditions=meta["conditions"],
        seeds=meta["seeds"],
        renderer=meta["renderer"],
        max_episode_steps=meta["max_episode_steps"],
        task=meta["task"],
        spawn=meta["spawn"],
    )
    return float(run_campaign(config, out, show_progress=False).outcomes("random").mean())


@pytest.mark.slow
@pytest.mark.training
@pytest.mark.skipif(
    os.environ.get("DRIVEENV_E2E_DEMO") != "1",
    reason="the full demo takes about 10 minutes: run `make test-e2e` (DRIVEENV_E2E_DEMO=1)",
)
@pytest.mark.timeout(1800)  # the full demo: about 10 minutes on 2 idle cores
def test_demo_agents_beat_random_and_the_expert_solves_the_episodes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "report:" in printed and "[5/5] headline" in printed

    headline = json.loads((out / "headline.json").read_text())
    assert {row["agent"] for row in headline["agents"]} == TRAINED | {"expert"}
    for renderer in RENDERERS:
        campaign = load_campaign(out / f"eval-{renderer}")
        expert = campaign.outcomes("expert")
        assert expert.size >= 20 and expert.mean() >= 0.95, (renderer, expert.mean())
        random_rate = _random_baseline(out / f"eval-{renderer}", tmp_path / f"random-{renderer}")
        for agent in TRAINED:
            rate = campaign.outcomes(agent).mean()
            assert rate > random_rate, (
                f"{agent} ({renderer} camera): {rate:.0%} <= random {random_rate:.0%}"
            )

    report = (out / "report" / "report.html").read_text()
    assert "<img" in report and "http://" not in report.replace("http://www.w3.org", "")
    assert json.loads((out / "report" / "summary.json").read_text())

    # A second run reuses the trained agents and finished episodes.
    assert cli.main(["demo", "--out", str(out)]) == 0
    assert json.loads((out / "headline.json").read_text())["agents"] == headline["agents"]


@pytest.mark.slow
@pytest.mark.training
@pytest.mark.parametrize("scene", ["bird", "street", "dashcam"])
def test_quick_demo_runs_end_to_end_on_each_shipped_scene(tmp_path, capsys, scene):
    """`driveenv demo --quick` (tiny budgets) on the table top and on both roads: every stage runs,
    the expert completes the scene's task under every camera and the report is written. What the
    trained agents score at these budgets is not asserted (they barely train)."""
    out = tmp_path / "demo"
    scene_dir = REPO / "assets" / "scenes" / scene
    assert cli.main(["demo", "--quick", "--scene", str(scene_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[5/5] headline" in printed and "sim (field)" in printed and "sim (mesh)" in printed

    headline = json.loads((out / "headline.json").read_text())
    rows = {row["agent"]: row for row in headline["agents"]}
    assert set(rows) == TRAINED | {"expert"}
    for renderer in RENDERERS:
        campaign = load_campaign(out / f"eval-{renderer}")
        assert campaign.meta["task"] == ("goal" if scene == "bird" else "route")
        assert campaign.outcomes("expert").mean() == 1.0, renderer
    assert (out / "report" / "report.html").is_file()
