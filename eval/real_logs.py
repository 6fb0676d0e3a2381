"""Real trial logs: the CSV a person fills in while running agents on the real robot.

Format (one row per trial; a header row names the columns, in any order):

========== ========== ===============================================================
column     required   meaning
========== ========== ===============================================================
agent      yes        the agent's name, as in the simulated campaign (its run name)
condition  yes        the condition of the trial, e.g. the lighting ("capture", "dim")
trial      yes        the trial's number or label, unique per (agent, condition)
success    yes        did it reach the goal: true/false, yes/no, 1/0 (any case)
collision  yes        did it touch anything: true/false, yes/no, 1/0
duration   yes        seconds from start to end of the trial (empty if not timed)
notes      no         free text
(others)   no         kept as they are (e.g. operator, battery, route_completion)
========== ========== ===============================================================

Trial numbers compare as numbers (``1`` and ``01`` are the same trial). Fields follow CSV's
quoting: a quoted ``notes`` may hold commas and span lines. Lines starting with ``#`` between
records are comments. The validator reads the whole file and reports every
problem with its line number before refusing it, so a person fixes the file in one pass.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from eval.errors import TrialLogError

REQUIRED_COLUMNS = ("agent", "condition", "trial", "success", "collision", "duration")
OPTIONAL_COLUMNS = ("notes",)
TRUE_WORDS = frozenset({"true", "yes", "1", "y", "t"})
FALSE_WORDS = frozenset({"false", "no", "0", "n", "f"})
MAX_REPORTED_PROBLEMS = 50
INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class Trial:
    """One real trial, as recorded."""

    agent: str
    condition: str
    trial: str
    success: bool
    collision: bool
    duration: float | None
    notes: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class TrialLog:
    """A validated trial log: its trials in file order and the names of extra columns."""

    path: Path
    trials: list[Trial]
    extra_columns: tuple[str, ...] = ()

    @property
    def agents(self) -> list[str]:
        """Agent names in order of first appearance."""
        return list(dict.fromkeys(t.agent for t in self.trials))

    @property
    def conditions(self) -> list[str]:
        return list(dict.fromkeys(t.condition for t in self.trials))

    def select(self, agent: str, condition: str | None = None) -> list[Trial]:
        return [
            t
            for t in self.trials
            if t.agent == agent and (condition is None or t.condition == condition)
        ]


def parse_bool(text: str) -> bool | None:
    """``True``/``False`` for the accepted spellings, ``None`` for anything else."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def load_trials(path: str | Path, known_agents: Iterable[str] | None = None) -> TrialLog:
    """Read and validate a trial log; raise ``TrialLogError`` listing every problem.

    ``known_agents``: the agent names of the simulated campaign; a trial naming any other agent
    is a problem (a typo in the log would otherwise silently drop that agent from the report).
    """
    path = Path(path)
    if not path.is_file():
        raise TrialLogError(f"{path}: trial log not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise TrialLogError(f"{path}: not a UTF-8 text file ({error.reason})") from None
    known = None if known_agents is None else set(known_agents)

    numbered = _records(path, text)
    if not numbered:
        raise TrialLogError(
            f"{path}: empty trial log (expected a header: {','.join(REQUIRED_COLUMNS)})"
        )
    line_numbers = [number for number, _ in numbered]
    rows = [row for _, row in numbered]
    header = [name.strip().lower() for name in rows[0]]
    problems: list[str] = []

    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        problems.append(
            f"line {line_numbers[0]}: missing column(s) {', '.join(missing)} "
            f"(the header must name {', '.join(REQUIRED_COLUMNS)})"
        )
    duplicated_columns = sorted({name for name in header if header.count(name) > 1})
    if duplicated_columns:
        problems.append(
            f"line {line_numbers[0]}: column(s) named twice: "
            + ", ".join(repr(name) for name in duplicated_columns)
        )
    if problems:
        raise TrialLogError(_summary(path, problems))

    extra_columns = tuple(n for n in header if n not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
    trials: list[Trial] = []
    seen: dict[tuple[str, str, str], int] = {}
    for number, row in zip(line_numbers[1:], rows[1:], strict=True):
        if len(row) != len(header):
            problems.append(f"line {number}: {len(row)} fields, the header has {len(header)}")
            continue
        values = {name: value.strip() for name, value in zip(header, row, strict=True)}
        trial = _parse_row(values, number, known, extra_columns, problems)
        if trial is None:
            continue
        key = (trial.agent, trial.condition, trial_key(trial.trial))
        if key in seen:
            problems.append(
                f"line {number}: duplicate trial {trial.trial!r} of agent {trial.agent!r} "
                f"under condition {trial.condition!r} (first on line {seen[key]})"
            )
            continue
        seen[key] = number
        trials.append(trial)
    if not problems and not trials:
        problems.append(f"line {line_numbers[0]}: the header is there but no trials follow")
    if problems:
        raise TrialLogError(_summary(path, problems))
    return TrialLog(path=path, trials=trials, extra_columns=extra_columns)


def trial_key(label: str) -> str:
    """The identity of a trial label: ``1``, ``01`` and ``+1`` are the same trial number."""
    return str(int(label)) if INTEGER.fullmatch(label) else label


def _records(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """(first line number, fields) of every CSV record, comment and blank lines skipped.

    A quoted field may span lines (valid CSV, e.g. multi-line notes); only lines *between*
    records are checked for ``#`` comments, so a note's own line starting with ``#`` stays in it.
    An unbalanced quote is one ``TrialLogError`` naming the line the record started on.
    """
    lines = text.splitlines(keepends=True)
    state = {"next": 0, "between": True, "first": 0}

    def feed():
        while state["next"] < len(lines):
            line = lines[state["next"]]
            state["next"] += 1
            if state["between"]:
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                state["between"], state["first"] = False, state["next"]
            yield line

    reader = csv.reader(feed(), strict=True)
    records = []
    while True:
        state["between"] = True
        try:
            row = next(reader)
        except StopIteration:
            return records
        except csv.Error as error:
            raise TrialLogError(
                f"{path}: line {state['first']}: not valid CSV ({error}; is a quote left open?)"
            ) from None
        records.append((state["first"], row))


def _parse_row(
    values: dict[str, str],
    number: int,
    known: set[str] | None,
    extra_columns: tuple[str, ...],
    problems: list[str],
) -> Trial | None:
    """One row to a ``Trial``, appending each problem found to ``problems``."""
    before = len(problems)
    for name in ("agent", "condition", "trial"):
        if not values[name]:
            problems.append(f"line {number}: empty {name}")
    agent = values["agent"]
    if agent and known is not None and agent not in known:
        problems.append(
            f"line {number}: unknown agent {agent!r} (the simulated campaign has "
            f"{', '.join(sorted(known)) or 'no agents'})"
        )
    flags = {}
    for name in ("success", "collision"):
        flags[name] = parse_bool(values[name])
        if flags[name] is None:
            problems.append(
                f"line {number}: {name} is {values[name]!r}, expected true/false, yes/no or 1/0"
            )
    duration: float | None = None
    if values["duration"]:
        try:
            duration = float(values["duration"])
        except ValueError:
            duration = math.nan
        if not math.isfinite(duration) or duration < 0:
            problems.append(
                f"line {number}: duration is {values['duration']!r}, expected seconds >= 0 or empty"
            )
    if len(problems) > before:
        return None
    return Trial(
        agent=agent,
        condition=values["condition"],
        trial=values["trial"],
        success=bool(flags["success"]),
        collision=bool(flags["collision"]),
        duration=duration,
        notes=values.get("notes", ""),
        extra={name: values[name] for name in extra_columns},
        line=number,
    )


def _summary(path: Path, problems: list[str]) -> str:
    shown = problems[:MAX_REPORTED_PROBLEMS]
    more = len(problems) - len(shown)
    tail = f"; and {more} more" if more else ""
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return f"{path}: {count}: " + "; ".join(shown) + tail
