"""A truncated episode record: ``report`` names it in one line, ``evaluate`` recomputes it."""

from __future__ import annotations

import json

import pytest

from driveenv.cli import main
from eval.errors import CampaignError
from eval.rollouts import episode_paths, load_campaign
from scene_builder.synthetic import make_synthetic_scene


def test_truncated_record_is_named_by_report_and_redone_by_evaluate(tmp_path, capsys):
    scene = str(make_synthetic_scene(tmp_path / "scene", seed=0))
    out = tmp_path / "eval"
    evaluate = ["evaluate", "expert", "--scene", scene, "--episodes", "2"]
    evaluate += ["--max-episode-steps", "10", "--out", str(out)]
    assert main(evaluate) == 0
    record = episode_paths(out, "expert", "capture", 1)[0]
    whole = json.loads(record.read_text())
    record.write_text(record.read_text()[:25])  # cut off mid-file

    with pytest.raises(CampaignError, match="damaged episode record"):
        load_campaign(out)
    report = ["report", "--sim", str(out), "--scene", scene, "--no-fidelity"]
    assert main([*report, "--out", str(tmp_path / "report")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(record) in err and "evaluate" in err
    assert not (tmp_path / "report").exists()

    assert main(evaluate) == 0
    warning = capsys.readouterr().err.strip()
    assert str(record) in warning and "recomputing" in warning
    assert json.loads(record.read_text()) == whole  # the same seeded episode again
    record.write_text(json.dumps({"agent": "expert"}))  # valid JSON, not a record
    with pytest.raises(CampaignError, match="episode record without condition"):
        load_campaign(out)
