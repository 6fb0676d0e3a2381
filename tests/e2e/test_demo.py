"""The quick demo end to end: shipped bird scene -> four agents -> two campaigns -> report."""

from __future__ import annotations

import json

from driveenv import cli


def test_quick_demo_writes_a_report_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "report:" in printed and "[5/5] headline" in printed

    headline = json.loads((out / "headline.json").read_text())
    agents = {row["agent"]: row for row in headline["agents"]}
    assert set(agents) == {"sac", "ppo", "diffusion", "bc", "expert"}
    # The privileged expert is the yardstick: it must solve the quick episodes.
    assert agents["expert"]["sim_field"] >= 0.5
    for row in agents.values():
        for renderer in ("field", "mesh"):
            assert 0.0 <= row[f"sim_{renderer}"] <= 1.0

    report = (out / "report" / "report.html").read_text()
    assert "<img" in report and "http://" not in report.replace("http://www.w3.org", "")
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary
    for renderer in ("field", "mesh"):
        assert (out / f"eval-{renderer}" / "campaign.json").is_file()

    # A second run reuses the trained agents and finished episodes.
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    assert json.loads((out / "headline.json").read_text())["agents"] == headline["agents"]
