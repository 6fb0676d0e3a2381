"""The report's camera-transfer section, from campaign records written here (no training)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eval.report import ReportConfig, write_report
from eval.report_transfer import camera_transfer
from eval.rollouts import CAMPAIGN_FILE, agent_specs, episode_paths, load_campaign, scene_identity
from scene_builder.synthetic import make_synthetic_scene

# Newcombe (1998), Table II, example (b): 9/10 vs 3/10, hybrid score interval 0.1705 to 0.8090
BAKED_WINS = [True] * 9 + [False]
FIELD_WINS = [True, False, True, False, False, True, False, False, False, False]


def write_campaign(root, scene, agents: dict, renderers: dict, wins: dict):
    """An evaluation directory as 'driveenv evaluate' writes it: campaign.json and records."""
    eval_dir = root / "eval"
    eval_dir.mkdir(parents=True)
    meta = {
        "scene": scene_identity(scene),
        "agents": agents,
        "agent_renderers": renderers,
        "conditions": ["capture"],
        "seeds": list(range(10)),
        "renderer": "baked",
    }
    (eval_dir / CAMPAIGN_FILE).write_text(json.dumps(meta))
    for agent, outcomes in wins.items():
        for seed, success in enumerate(outcomes):
            path, trajectory = episode_paths(eval_dir, agent, "capture", seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            record = {"agent": agent, "condition": "capture", "seed": seed, "success": success}
            record.update(collision=False, off_road=not success, route_completion=0.5)
            record.update(duration=5.0, path_length=0.2, steps=20, **{"return": 0.0})
            path.write_text(json.dumps(record))
            np.savez(trajectory, x=np.linspace(0, 0.2, 5), y=np.zeros(5), yaw=np.zeros(5))
    return eval_dir


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_synthetic_scene(tmp_path_factory.mktemp("transfer") / "scene", seed=0)


def report(root, scene, eval_dir):
    config = ReportConfig(
        sim=eval_dir, scene=scene, out=root / "report", n_bootstrap=50, fidelity=False
    )
    html = write_report(config).read_text()
    return html, json.loads((root / "report" / "summary.json").read_text())


def test_the_section_shows_success_per_camera_and_the_gap(tmp_path, scene):
    agents = {"ppo": "runs/ppo", "ppo@field": "runs/ppo", "expert": "expert"}
    wins = {"ppo": BAKED_WINS, "ppo@field": FIELD_WINS, "expert": [True] * 10}
    eval_dir = write_campaign(tmp_path, scene, agents, {"ppo@field": "field"}, wins)
    html, summary = report(tmp_path, scene, eval_dir)
    (group,) = summary["camera_transfer"]  # the expert ran under one camera only: no entry
    assert group["source"] == "runs/ppo" and group["reference"] == "ppo"
    baked, field = group["rows"]
    assert (baked["renderer"], field["renderer"]) == ("baked", "field")
    assert baked["success"]["successes"] == 9 and field["success"]["successes"] == 3
    assert baked["gap"] is None
    gap = field["gap"]
    assert gap["episodes"] == 10 and gap["value"] == pytest.approx(-0.6)
    assert gap["low"] == pytest.approx(-0.8090, abs=1e-4)
    assert gap["high"] == pytest.approx(-0.1705, abs=1e-4)
    assert "Camera transfer" in html and "-60 points" in html and "-81 to" in html


def test_the_gap_counts_only_the_episodes_both_cameras_ran(tmp_path, scene):
    agents = {"ppo": "runs/ppo", "ppo@field": "runs/ppo"}
    wins = {"ppo": BAKED_WINS, "ppo@field": FIELD_WINS[:6]}  # the field run stopped early
    eval_dir = write_campaign(tmp_path, scene, agents, {"ppo@field": "field"}, wins)
    (group,) = camera_transfer(load_campaign(eval_dir))
    gap = group["rows"][1]["gap"]
    assert gap["episodes"] == 6
    assert gap["value"] == pytest.approx((sum(FIELD_WINS[:6]) - sum(BAKED_WINS[:6])) / 6)


def test_the_section_is_absent_with_one_camera(tmp_path, scene):
    agents = {"ppo": "runs/ppo", "expert": "expert"}
    wins = {"ppo": BAKED_WINS, "expert": FIELD_WINS}
    html, summary = report(tmp_path, scene, write_campaign(tmp_path, scene, agents, {}, wins))
    assert summary["camera_transfer"] is None
    assert "Camera transfer" not in html


def test_run_at_renderer_names_the_same_run_under_another_camera(tmp_path):
    run = tmp_path / "ppo"
    run.mkdir()
    specs = agent_specs([str(run), f"{run}@field", "expert@mesh"])
    assert [(s.name, s.renderer) for s in specs] == [
        ("ppo", None),
        ("ppo@field", "field"),
        ("expert@mesh", "mesh"),
    ]
    assert specs[0].source == specs[1].source == str(run) and specs[2].builtin


def test_an_agent_at_a_renderer_is_evaluated_with_that_camera(tmp_path, scene):
    from eval.rollouts import AgentSpec, CampaignConfig, make_sim_env
    from scene_builder.bundle import load_scene

    bundle = load_scene(scene)
    run = tmp_path / "ppo"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"env_config": {"obs": "rgb", "image_size": 16}}))
    config = CampaignConfig(bundle.root, [AgentSpec("ppo", str(run))], renderer="baked")
    for spec, camera in (
        (AgentSpec("ppo", str(run)), "baked"),
        (agent_specs([f"{run}@mesh"])[0], "mesh"),
    ):
        env = make_sim_env(config, spec, "capture", bundle)
        try:
            assert env.renderer.name == camera
        finally:
            env.close()
