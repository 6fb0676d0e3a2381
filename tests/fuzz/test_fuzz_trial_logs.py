"""Fuzz: any text as a trial log either validates or is one TrialLogError line."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from eval.real_logs import REQUIRED_COLUMNS, load_trials, trial_key
from tests.fuzz.strategies import FUZZ, check_one_line

# Cells made of what breaks CSV readers: quotes, separators, line breaks, comments, numbers.
CELL = st.text(
    alphabet=st.sampled_from(list('ab1 0,"\n\r#;.-+e\t')), max_size=10
) | st.sampled_from(
    ["true", "false", "yes", "NO", "1", "01", "0", "3.5", "-1", "nan", "inf", "", "ppo", "dim"]
)
HEADER = (
    st.permutations([*REQUIRED_COLUMNS, "notes", "operator"])
    | st.lists(st.sampled_from([*REQUIRED_COLUMNS, "notes", "x", "Agent ", ""]), max_size=9)
    | st.lists(CELL, min_size=6, max_size=8).map(lambda names: [*REQUIRED_COLUMNS, *names])
)


def _line(cells: list[str], quote: bool) -> str:
    if quote:
        cells = ['"' + c.replace('"', '""') + '"' for c in cells]
    return ",".join(cells)


@st.composite
def trial_logs(draw) -> str:
    header = draw(HEADER)
    lines = [",".join(header)]
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 9)) == 0:
            lines.append("# " + draw(CELL))
            continue
        cells = draw(st.lists(CELL, min_size=max(len(header) - 1, 0), max_size=len(header) + 1))
        lines.append(_line(cells, quote=draw(st.booleans())))
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n"]))


@FUZZ
@given(text=trial_logs() | st.text(max_size=200))
def test_any_text_validates_or_is_one_line(text):
    path = Path(tempfile.mkdtemp(prefix="fuzz-trials-")) / "trials.csv"
    path.write_text(text, encoding="utf-8")
    try:
        log = load_trials(path)
    except Exception as error:  # noqa: BLE001 - the property is about which exceptions
        check_one_line(error)
    else:
        keys = [(t.agent, t.condition, trial_key(t.trial)) for t in log.trials]
        assert log.trials and len(set(keys)) == len(keys)
        assert all(t.duration is None or t.duration >= 0 for t in log.trials)
    finally:
        path.unlink()
        path.parent.rmdir()
