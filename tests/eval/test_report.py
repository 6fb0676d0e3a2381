"""The report end to end on a synthetic scene: numbers, self-contained HTML, errors, a browser look."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from driveenv.cli import main
from eval.errors import CampaignError, EvalError, TrialLogError
from eval.report import ReportConfig, write_report
from eval.rollouts import AgentSpec, CampaignConfig, run_campaign
from scene_builder.bundle import load_scene
from scene_builder.datasets import Frame, PosedDataset, load_dataset, save_dataset
from scene_builder.importers import read_llff
from scene_builder.synthetic import make_synthetic_scene
from tests.eval.fakes import StandInField, count_verified_loads, point_env, scripted_policy

AGENTS = [
    ("expert", "toward"),
    ("mid", "0.6"),
    ("weak", "0.3"),
    ("bad", "away"),
    ("newcomer", "0.8"),
]
REAL_SUCCESS = {"expert": 0.8, "mid": 0.5, "weak": 0.2, "bad": 0.0}  # newcomer: sim only


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    scene = make_synthetic_scene(root / "scene", seed=0)
    config = CampaignConfig(
        scene, [AgentSpec(n, s) for n, s in AGENTS], ["capture", "dim"], list(range(12))
    )
    run_campaign(config, root / "eval", point_env, scripted_policy, False)
    lines = ["agent,condition,trial,success,collision,duration,notes,operator"]
    for agent, p in REAL_SUCCESS.items():
        for condition in ("capture", "dim"):
            for trial in range(10):
                success = trial < round(10 * p) - (condition == "dim")
                lines.append(f"{agent},{condition},{trial},{success},{not success},12.0,,test")
    (root / "trials.csv").write_text("\n".join(lines) + "\n")
    return root, scene


def report(root, scene, out="report", **kw):
    config = ReportConfig(
        sim=root / "eval",
        real=root / "trials.csv",
        scene=scene,
        out=root / out,
        n_bootstrap=300,
        **kw,
    )
    return write_report(config)


@pytest.fixture(scope="module")
def written(inputs):
    root, scene = inputs
    html_path = report(root, scene)
    return html_path, json.loads((html_path.parent / "summary.json").read_text())


def test_summary_numbers(written):
    _, summary = written
    assert summary["agents"] == [name for name, _ in AGENTS]
    forecasts = {f["agent"]: f for f in summary["forecasts"]}
    assert forecasts["newcomer"]["real"] is None and forecasts["expert"]["real"]["n"] == 20
    for f in forecasts.values():
        assert 0 <= f["forecast"]["low"] <= f["forecast"]["median"] <= f["forecast"]["high"] <= 1
    # the sim is optimistic here (expert ~100% sim vs 75% real): the forecast pulls it down
    assert forecasts["expert"]["forecast"]["median"] < forecasts["expert"]["sim"]["value"]
    assert summary["mapping"]["fitted_on"] == ["expert", "mid", "weak", "bad"]
    agreement = summary["agreement"]
    assert agreement["spearman"]["value"] > 0.7 and agreement["bias"]["value"] > 0
    assert agreement["srcc"]["low"] <= agreement["srcc"]["value"] <= agreement["srcc"]["high"]
    assert len(summary["validation"]["held_out"]) == 4 and summary["validation"]["reason"] is None
    rows = {(r["agent"], r["condition"]): r for r in summary["per_condition"]}
    assert rows[("bad", "dim")]["sim"]["value"] == 0 and rows[("newcomer", "dim")]["real"] is None
    # one mapping for all conditions: a lower sim rate under dim gives a lower forecast
    assert (
        rows[("weak", "dim")]["forecast"]["median"]
        < rows[("weak", "capture")]["forecast"]["median"]
    )
    assert "no radiance field" in summary["fidelity"]["skipped"]


def test_html_is_self_contained(written):
    html_path, _ = written
    html = html_path.read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert 'src="http' not in html and "<link" not in html and "<script" not in html
    for heading in ("Headline: forecast real success", "Leave-one-agent-out", "Methods"):
        assert heading in html
    assert "newcomer" in html and "cannot compute" not in html


def test_report_reads_the_scene_once(inputs, tmp_path, monkeypatch):
    """The scene given (not the path campaign.json recorded) is loaded and hashed once."""
    root, scene = inputs
    moved = shutil.copytree(scene, tmp_path / "moved")
    loads = count_verified_loads(monkeypatch)
    summary_path = report(root, moved, out=tmp_path / "r").parent / "summary.json"
    assert loads == [moved / "collision.obj"]
    assert json.loads(summary_path.read_text())["episodes"] == len(AGENTS) * 2 * 12


def test_single_agent_log_says_cannot_compute(inputs, tmp_path):
    root, scene = inputs
    log = tmp_path / "one.csv"
    log.write_text("agent,condition,trial,success,collision,duration\nmid,capture,1,true,false,3\n")
    config = ReportConfig(
        sim=root / "eval", real=log, scene=scene, out=tmp_path / "r", n_bootstrap=50
    )
    summary = json.loads((write_report(config).parent / "summary.json").read_text())
    assert summary["agreement"]["srcc"]["value"] is None
    assert "at least 3 agents" in summary["agreement"]["srcc"]["reason"]
    assert "too few agents" in summary["validation"]["reason"]
    assert "cannot compute" in (tmp_path / "r" / "report.html").read_text()


def test_errors_are_clear(inputs, tmp_path):
    root, scene = inputs
    other = make_synthetic_scene(tmp_path / "other", seed=1)
    with pytest.raises(CampaignError, match="were run on scene 'synthetic-0'"):
        write_report(ReportConfig(sim=root / "eval", scene=other, out=tmp_path / "r1"))
    bad_agent = tmp_path / "bad_agent.csv"
    bad_agent.write_text(
        "agent,condition,trial,success,collision,duration\nghost,capture,1,true,false,3\n"
    )
    with pytest.raises(TrialLogError, match="line 2: unknown agent 'ghost'"):
        write_report(
            ReportConfig(sim=root / "eval", real=bad_agent, scene=scene, out=tmp_path / "r2")
        )
    bad_condition = tmp_path / "bad_condition.csv"
    bad_condition.write_text(
        "agent,condition,trial,success,collision,duration\nmid,night,1,true,false,3\n"
    )
    with pytest.raises(CampaignError, match="condition.*night were not simulated"):
        write_report(
            ReportConfig(sim=root / "eval", real=bad_condition, scene=scene, out=tmp_path / "r3")
        )
    (tmp_path / "taken").mkdir()
    with pytest.raises(EvalError, match="already exists"):
        write_report(ReportConfig(sim=root / "eval", scene=scene, out=tmp_path / "taken"))
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_cli_report_and_one_line_error(inputs, tmp_path, capsys):
    root, scene = inputs
    args = ["report", "--sim", str(root / "eval"), "--scene", str(scene), "--n-bootstrap", "50"]
    assert main([*args, "--real", str(root / "trials.csv"), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").is_file()
    broken = tmp_path / "broken.csv"
    broken.write_text(
        "agent,condition,trial,success,collision,duration\nmid,capture,1,maybe,false,3\n"
    )
    assert main([*args, "--real", str(broken), "--out", str(tmp_path / "r2")]) == 1
    error = capsys.readouterr().err.strip()
    assert (
        error.count("\n") == 0 and "broken.csv" in error and "line 2: success is 'maybe'" in error
    )


def small_bird_dataset(shared_data, root, count=24, width=68):
    """The first ``count`` bird frames, downscaled, as a posed dataset folder (held out: 0, 8, 16)."""
    capture = shared_data / "bird_capture"
    frames, _ = read_llff(capture / "poses_bounds.npy", capture / "images")
    (root / "images").mkdir(parents=True)
    small = []
    for frame in frames[:count]:
        camera = frame.camera.scaled(width / frame.camera.width)
        image = cv2.resize(cv2.imread(str(frame.image_path)), (camera.width, camera.height))
        path = root / "images" / frame.image_path.name
        cv2.imwrite(str(path), image)
        small.append(Frame(path, camera, frame.camera_to_world))
    save_dataset(PosedDataset(root, small))
    return load_dataset(root)


def test_fidelity_section_on_real_frames(inputs, shared_data, tmp_path, monkeypatch):
    """With a field (here a nearest-view stand-in) and real frames, the report measures both."""
    root, scene_path = inputs
    dataset = small_bird_dataset(shared_data, tmp_path / "dataset")
    stand_in = StandInField(dataset, oracle=False)
    staged = dataclasses.replace(
        load_scene(scene_path), field_dir=tmp_path, dataset_dir=tmp_path / "dataset"
    )
    monkeypatch.setattr(staged, "load_field", lambda: stand_in)
    html_path = report(root, staged, out="with_fidelity", fidelity_frames=3)
    fidelity = json.loads((html_path.parent / "summary.json").read_text())["fidelity"]
    assert fidelity["frame_indices"] == [0, 8, 16]
    field_view = fidelity["views"]["field"]["presets"]
    assert list(field_view) == list(load_scene(scene_path).lighting)  # every preset, one rule
    assert field_view["capture"]["psnr"] > field_view["dim"]["psnr"]
    # the simulator's mesh camera renders every preset of the scene at the same poses
    mesh_view = fidelity["views"]["simulator camera (mesh)"]["presets"]
    assert list(mesh_view) == list(load_scene(scene_path).lighting)
    assert all(0 < p["psnr"] < 40 and -1 <= p["ssim"] <= 1 for p in mesh_view.values())
    sensitivity = fidelity["policy_sensitivity"]["expert"]["skipped"]
    assert "not found" in sensitivity and fidelity["policy_sensitivity_measured"] == 0
    html = html_path.read_text()
    # real frame + two field presets + the simulator camera, for each of the three frames
    assert "PSNR (dB)" in html and html.count("data:image/png;base64,") >= 4 + 3 * 4


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get install chromium) - no browser check"
)
def test_report_renders_in_headless_chromium(written, tmp_path):
    import cv2

    html_path, _ = written
    shot = tmp_path / "report.png"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,2400",
        html_path.resolve().as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2400, 1280)
    # a laid-out page: mostly white background, but with text and coloured figures on it
    assert 0.5 < (image > 245).all(axis=2).mean() < 0.98
    hue_rich = (image.max(axis=2).astype(int) - image.min(axis=2)) > 60
    assert hue_rich.mean() > 0.005
    assert np.unique(image.reshape(-1, 3), axis=0).shape[0] > 500


def test_broken_field_skips_only_the_fidelity_section(inputs, tmp_path):
    root, scene_path = inputs
    (tmp_path / "field").mkdir()  # no field.json in it
    staged = dataclasses.replace(
        load_scene(scene_path), field_dir=tmp_path / "field", dataset_dir=tmp_path
    )
    html_path = report(root, staged, out="broken_field")
    fidelity = json.loads((html_path.parent / "summary.json").read_text())["fidelity"]
    assert "cannot load the field" in fidelity["skipped"] and "field.json" in fidelity["skipped"]
