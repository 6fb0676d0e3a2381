"""One writer for ``benchmarks/RESULTS.md``: each benchmark script owns one section of it.

A section starts with ``## <name>`` and runs to the next ``## `` heading. ``write_section``
replaces the script's own section (or appends it), leaves the others as they are, and stamps
what a reader needs to judge a speed figure: the machine, the load beside the run, the date and
the command. The README quotes these sections instead of copying numbers into the code.

A script prints its table as before inside ``with tee() as printed:`` and then calls
``write_section(NAME, printed.getvalue(), load_at_start=...)``: what the terminal showed is what
the file keeps.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import platform
import sys
from pathlib import Path

from common.atomic import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = (
    "# Benchmark results\n\n"
    "Written by the scripts in `benchmarks/`, one section each; re-run a script to refresh its\n"
    "section. Speed figures depend on the machine and on what else ran beside the benchmark:\n"
    "each section says both.\n"
)


def machine() -> str:
    """A one-line description of this machine: processor, cores, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def load() -> str:
    """The 1-minute load average now (the other processes beside the run)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


class _Tee(io.StringIO):
    """Writes to the real stdout and keeps a copy."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(text)
        return super().write(text)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def tee():
    """Print as usual and keep what was printed (``.getvalue()``): the body of a section."""
    copy = _Tee(sys.stdout)
    with contextlib.redirect_stdout(copy):
        yield copy


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table; numbers right-aligned."""
    align = [
        "---:" if rows and isinstance(rows[0][i], int | float) else "---"
        for i in range(len(header))
    ]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def write_section(
    name: str, body: str, path: Path = RESULTS, load_at_start: str | None = None
) -> None:
    """Replace (or add) the section ``## name`` of RESULTS.md with ``body`` and a stamp.

    ``load_at_start`` is ``load()`` taken when the run began; the load now is added beside it.
    """
    loads = f"load {load_at_start} at the start, {load()} at the end"
    if load_at_start is None:
        loads = f"load {load()} at the end"
    command = " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    stamp = f"_{datetime.date.today().isoformat()}; {machine()}; {loads}; command: `{command}`_"
    body = body.replace("\n## ", "\n### ")  # a heading in the body must not start a section
    if body.startswith("## "):
        body = "#" + body
    section = f"## {name}\n\n{stamp}\n\n{body.strip()}\n"
    text = path.read_text() if path.exists() else HEADER
    head, *rest = text.split("\n## ")
    parts, placed = [head.rstrip() + "\n"], False
    for old in rest:
        if old.split("\n", 1)[0].strip() == name:
            parts.append(section)
            placed = True
        else:
            parts.append("## " + old.rstrip() + "\n")
    if not placed:
        parts.append(section)
    write_text_atomic(path, "\n".join(parts))
