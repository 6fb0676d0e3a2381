"""The trial planner and ``driveenv plan-trials`` on synthetic paired campaigns."""

from __future__ import annotations

import json

import numpy as np
import pytest

from driveenv.cli import main
from eval.planner import plan_trials
from eval.real_logs import load_trials
from eval.rollouts import load_campaign
from tests.eval.fakes import write_paired_campaign

REAL = np.array([[0.8, 0.6], [0.6, 0.45], [0.4, 0.3], [0.2, 0.1]])  # agents x (capture, dim)


def campaign(tmp_path, correlation: float, seed_column: bool = True):
    rng = np.random.default_rng(7)
    sim = np.clip(REAL + 0.1, 0, 0.98)  # an optimistic simulation
    eval_dir, log = write_paired_campaign(
        tmp_path, rng, REAL, sim, correlation, episodes=150, trials=10, seed_column=seed_column
    )
    return load_campaign(eval_dir), load_trials(log)


def test_a_correlated_simulation_needs_fewer_real_trials(tmp_path):
    verdict, plan = plan_trials(*campaign(tmp_path, 0.9), width=0.15)
    assert verdict.helps
    pooled = [p for p in plan if p.condition is None]
    per_condition = [p for p in plan if p.condition is not None]
    assert len(pooled) == 4 and len(per_condition) == 8
    for row in pooled:
        assert row.sim_used and row.width_with_sim < row.width_real_only
        assert row.more_with_sim < row.more_real_only
    # a wider target needs fewer trials
    _, wide = plan_trials(*campaign(tmp_path / "again", 0.9), width=0.3)
    assert sum(p.more_real_only for p in wide) < sum(p.more_real_only for p in plan)
    assert "without the simulation" in per_condition[0].sentence(0.15)
    assert " in capture " in per_condition[0].sentence(0.15)


def test_without_seeds_the_planner_falls_back_to_real_trials(tmp_path):
    verdict, plan = plan_trials(*campaign(tmp_path, 0.9, seed_column=False), width=0.15)
    assert not verdict.helps and "seed column" in verdict.reason
    for row in plan:
        assert not row.sim_used and row.more_with_sim == row.more_real_only
        assert "without the simulation" not in row.sentence(0.15)


def test_plan_trials_command(tmp_path, capsys):
    campaign(tmp_path, 0.9)
    code = main(
        ["plan-trials", "--sim", str(tmp_path / "eval"), "--real", str(tmp_path / "trials.csv")]
    )
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("simulation helps:")
    assert "more (with sim)" in out and "run " in out and "agent3" in out
    code = main(
        [
            "plan-trials",
            "--sim",
            str(tmp_path / "eval"),
            "--real",
            str(tmp_path / "trials.csv"),
            "--width",
            "1.5",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "--width" in err


def test_report_shows_the_section_and_falls_back_without_seeds(tmp_path):
    """The HTML report on a synthetic scene: with seeds, prediction-powered intervals and the
    planner's advice; without, the section says the simulation does not help."""
    from eval.report import ReportConfig, write_report
    from eval.rollouts import scene_identity
    from scene_builder.synthetic import make_synthetic_scene

    scene = make_synthetic_scene(tmp_path / "scene", seed=0)
    for seeds in (True, False):
        root = tmp_path / f"seeds_{seeds}"
        write_paired_campaign(
            root,
            np.random.default_rng(3),
            REAL,
            np.clip(REAL + 0.1, 0, 0.98),
            0.9,
            episodes=40,
            trials=10,
            seed_column=seeds,
            scene=scene_identity(scene),
        )
        config = ReportConfig(
            sim=root / "eval",
            real=root / "trials.csv",
            scene=scene,
            out=root / "report",
            n_bootstrap=50,
            fidelity=False,
        )
        html = write_report(config).read_text()
        summary = json.loads((root / "report" / "summary.json").read_text())
        section = summary["prediction_powered"]
        assert "Fewer real trials" in html and section["verdict"]["helps"] is seeds
        assert len(section["agents"]) == 4 and section["advice"]
        for row in section["agents"]:
            assert row["shown_from"] == ("prediction-powered" if seeds else "real trials only")
            assert row["forecast"] is not None and row["ppi"] is not None
            assert row["shown"]["low"] <= row["shown"]["value"] <= row["shown"]["high"]
        if seeds:
            assert "The simulation helps here" in html and "without the simulation" in html
        else:
            assert "The simulation does not help here" in html and "seed column" in html


def _campaign_for_the_example_log(root, tracks: bool):
    """A campaign with the demo's agents, conditions and episode seeds, whose simulated outcome
    of each seed in the shipped example trial log is that trial's real outcome (``tracks``) or
    its opposite; the seeds not in the log alternate between success and failure."""
    from driveenv.demo import EXAMPLE_TRIALS, FULL
    from eval.rollouts import CAMPAIGN_FILE, episode_paths

    log = load_trials(EXAMPLE_TRIALS)
    real = {(t.agent, t.condition, int(t.extra["seed"])): t.success for t in log.trials}
    agents = [*log.agents, "expert"]  # the demo also evaluates the expert, with no real trials
    seeds = list(range(FULL.eval_episodes))
    eval_dir = root / "eval"
    eval_dir.mkdir(parents=True)
    meta = {"scene": {"name": "bird", "path": str(root), "sha256": "0" * 64}}
    meta.update(agents=dict.fromkeys(agents, "expert"), conditions=list(FULL.conditions))
    (eval_dir / CAMPAIGN_FILE).write_text(json.dumps({**meta, "seeds": seeds}))
    for agent in agents:
        for condition in FULL.conditions:
            for seed in seeds:
                logged = real.get((agent, condition, seed))
                success = seed % 2 == 0 if logged is None else logged == tracks
                path, trajectory = episode_paths(eval_dir, agent, condition, seed)
                path.parent.mkdir(parents=True, exist_ok=True)
                record = {"agent": agent, "condition": condition, "seed": seed}
                record.update(success=success, collision=False, off_road=False)
                record.update(route_completion=float(success), duration=10.0, steps=10)
                path.write_text(json.dumps({**record, "path_length": 0.3, "return": 0.0}))
                np.savez(trajectory, x=np.linspace(0, 0.3, 5), y=np.zeros(5), yaw=np.zeros(5))
    return load_campaign(eval_dir), log


@pytest.mark.parametrize("tracks", [True, False])
def test_the_demo_section_on_the_shipped_example_log(tmp_path, tracks):
    """What `driveenv demo` shows: every trial of the example log pairs with a simulated episode
    of the demo (same agent, condition and seed), each trained agent gets a row with its own
    counts and each agent and condition a "run N more trials" line; a simulation that tracks
    the trials narrows the intervals, one that contradicts them is set aside (real-only
    intervals, the estimate equal to the real rate) and the section says why."""
    from eval.report_ppi import prediction_powered

    campaign, log = _campaign_for_the_example_log(tmp_path, tracks)
    section = prediction_powered(campaign, log, forecasts=[])
    verdict = section["verdict"]
    assert verdict["helps"] is tracks and verdict["agents"] == len(log.agents) == 4
    assert verdict["paired_trials"] == len(log.trials)
    if not tracks:
        assert "correlation" in verdict["reason"] and "-1.00" in verdict["reason"]
    assert [row["agent"] for row in section["agents"]] == log.agents
    for row in section["agents"]:
        mine = [t for t in log.trials if t.agent == row["agent"]]
        assert row["real"]["n"] == len(mine)
        assert row["real"]["successes"] == sum(t.success for t in mine)
        assert row["paired_by"] == "seed"
        ppi, real = row["ppi"], row["real"]
        if tracks:
            assert row["shown_from"] == "prediction-powered"
            assert ppi["high"] - ppi["low"] < real["high"] - real["low"]
        else:
            assert row["shown_from"] == "real trials only" and ppi["sim_weight"] == 0
            assert ppi["value"] == pytest.approx(real["value"])
    advice = section["advice"]
    assert len(advice) == len(log.agents) * len(log.conditions)
    for agent in log.agents:
        for condition in log.conditions:
            (line,) = [a for a in advice if f" of {agent} in {condition} " in a]
            assert line.startswith("run ") and ("without the simulation" in line) is tracks
