"""The trial planner and ``driveenv plan-trials`` on synthetic paired campaigns."""

from __future__ import annotations

import json

import numpy as np

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
