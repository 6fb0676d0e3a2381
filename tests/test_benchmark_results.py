"""benchmarks/results.py: each benchmark replaces only its own section of RESULTS.md."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "benchmark_results", Path(__file__).resolve().parents[1] / "benchmarks" / "results.py"
)
results = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(results)


def test_a_section_is_replaced_in_place_and_the_others_kept(tmp_path, capsys):
    path = tmp_path / "RESULTS.md"
    results.write_section("a", "first a", path)
    results.write_section("b", "| x |\n| --- |\n| 1 |", path)
    with results.tee() as printed:
        print("second a\n## not a section heading")
    assert "second a" in capsys.readouterr().out  # still printed
    results.write_section("a", printed.getvalue(), path, load_at_start="0.50")
    text = path.read_text()
    assert text.startswith(results.HEADER)
    assert text.count("## a\n") == 1 and text.index("## a\n") < text.index("## b\n")
    assert "first a" not in text and "second a" in text and "### not a section heading" in text
    assert "| 1 |" in text and "load 0.50 at the start" in text
