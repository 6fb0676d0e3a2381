"""The trial-log validator: a good file loads with its extra columns; a bad one lists every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.errors import TrialLogError
from eval.real_logs import load_trials

REPO = Path(__file__).resolve().parents[2]
HEADER = "agent,condition,trial,success,collision,duration,notes,operator\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trials.csv"
    path.write_text(text)
    return path


def test_good_log_loads_with_extra_columns_and_comments(tmp_path):
    path = write(
        tmp_path,
        "# recorded on the lab table\n"
        + HEADER
        + "ppo,capture,1,true,false,12.5,clean run,ana\n"
        + "ppo,capture,2,No,YES,,bumped the box,ana\n"
        + "sac,dim,1,1,0,9,,ben\n",
    )
    log = load_trials(path, known_agents=["ppo", "sac"])
    assert [t.success for t in log.trials] == [True, False, True]
    assert [t.collision for t in log.trials] == [False, True, False]
    assert log.trials[1].duration is None and log.trials[0].duration == 12.5
    assert log.extra_columns == ("operator",)
    assert log.trials[2].extra == {"operator": "ben"}
    assert log.trials[0].line == 3  # the comment line counts
    assert log.agents == ["ppo", "sac"] and log.conditions == ["capture", "dim"]
    assert len(log.select("ppo", "capture")) == 2


def test_every_problem_is_reported_with_its_line(tmp_path):
    path = write(
        tmp_path,
        HEADER
        + "ppo,capture,1,true,false,10,,a\n"  # line 2 ok
        + "ppo,capture,1,false,false,10,,a\n"  # line 3 duplicate of line 2
        + "pp0,capture,2,true,false,10,,a\n"  # line 4 unknown agent
        + "sac,capture,1,maybe,false,10,,a\n"  # line 5 success not boolean
        + "sac,capture,2,true,false,-3,,a\n"  # line 6 negative duration
        + "sac,capture,3,true\n",  # line 7 too few fields
    )
    with pytest.raises(TrialLogError) as caught:
        load_trials(path, known_agents=["ppo", "sac"])
    message = str(caught.value)
    assert str(path) in message and "5 problems" in message and "\n" not in message
    assert "line 3: duplicate trial '1' of agent 'ppo'" in message and "first on line 2" in message
    assert "line 4: unknown agent 'pp0'" in message
    assert "line 5: success is 'maybe'" in message
    assert "line 6: duration is '-3'" in message
    assert "line 7: 4 fields" in message


def test_missing_columns_named(tmp_path):
    path = write(tmp_path, "agent,trial,success\nppo,1,true\n")
    with pytest.raises(
        TrialLogError, match="line 1: missing column.*condition, collision, duration"
    ):
        load_trials(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "empty trial log"), (HEADER, "no trials follow")],
)
def test_empty_logs_refused(tmp_path, text, expected):
    with pytest.raises(TrialLogError, match=expected):
        load_trials(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(TrialLogError, match="not found"):
        load_trials(tmp_path / "nope.csv")


def test_shipped_example_is_valid():
    log = load_trials(REPO / "assets" / "examples" / "real_trials_example.csv")
    assert len(log.agents) >= 3 and len(log.trials) >= 30


def test_shipped_example_pairs_each_trial_with_a_demo_episode():
    """Each trial names a seed the full demo simulates, once per agent and condition, leaving
    unpaired episodes: the report's prediction-powered section pairs by seed on the demo."""
    from driveenv.demo import FULL

    log = load_trials(REPO / "assets" / "examples" / "real_trials_example.csv")
    assert "seed" in log.extra_columns
    seeds: dict[tuple[str, str], list[int]] = {}
    for trial in log.trials:
        seeds.setdefault((trial.agent, trial.condition), []).append(int(trial.extra["seed"]))
    for cell in seeds.values():
        assert len(set(cell)) == len(cell) < FULL.eval_episodes
        assert all(0 <= seed < FULL.eval_episodes for seed in cell)


def test_quoted_multiline_notes_are_valid_csv(tmp_path):
    path = write(
        tmp_path,
        HEADER
        + 'ppo,capture,1,true,false,12.5,"slid on the mat,\n# not a comment\n\nthen recovered",ana\n'
        + "ppo,capture,2,false,true,,,ana\n",
    )
    log = load_trials(path)
    assert log.trials[0].notes == "slid on the mat,\n# not a comment\n\nthen recovered"
    # line numbers stay those of the file: the second trial starts on line 6
    assert [t.line for t in log.trials] == [2, 6]


def test_unbalanced_quote_is_one_line_naming_where(tmp_path):
    path = write(
        tmp_path,
        HEADER
        + "ppo,capture,1,true,false,12.5,ok,ana\n"
        + 'ppo,capture,2,true,false,3,"oops,ana\n',
    )
    with pytest.raises(TrialLogError) as caught:
        load_trials(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "line 3" in message


@pytest.mark.parametrize("first, second", [("1", "01"), ("7", "+7"), ("002", "2")])
def test_numeric_trial_ids_that_are_the_same_number_are_duplicates(tmp_path, first, second):
    path = write(
        tmp_path,
        HEADER
        + f"ppo,capture,{first},true,false,1,,ana\n"
        + f"ppo,capture,{second},true,false,1,,ana\n",
    )
    with pytest.raises(TrialLogError, match="line 3: duplicate trial"):
        load_trials(path)


def test_trial_labels_that_are_not_numbers_stay_distinct(tmp_path):
    path = write(
        tmp_path,
        HEADER + "ppo,capture,a1,true,false,1,,ana\n" + "ppo,capture,a01,true,false,1,,ana\n",
    )
    assert [t.trial for t in load_trials(path).trials] == ["a1", "a01"]
