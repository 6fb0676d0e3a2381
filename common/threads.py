"""Intra-op threads sized to the cores that are free now, for torch work inside a shared machine.

torch splits an operation over ``torch.get_num_threads()`` threads and waits for the slowest.
When another process keeps one of the cores busy, the thread that shares it runs only in the
scheduler's time slices and every operation waits for it: on 2 cores beside one busy process
the field camera ran an order of magnitude slower with 2 threads than with 1 (issue 17). So the
field camera asks, before each call, how many cores no other process is using (the kernel's
count of runnable tasks, less this process's own running threads) and uses at most that many.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def _own_running_threads() -> int:
    running = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the thread ended while we looked
            continue
        if text[text.rfind(")") + 2 : text.rfind(")") + 3] == "R":
            running += 1
    return max(running, 1)


def free_cores() -> int:
    """Cores this process may use that no other process is running on now (at least 1); all
    allowed cores where the kernel's counts cannot be read (not Linux)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return cores or 1
    others = max(0, running - _own_running_threads())
    return max(1, min(cores or 1, (cores or 1) - others))


@contextlib.contextmanager
def torch_threads(limit: int) -> Iterator[int]:
    """Run the block with at most ``min(limit, free_cores())`` torch threads; restore after."""
    import torch

    before = torch.get_num_threads()
    threads = max(1, min(limit, free_cores()))
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        if threads != before:
            torch.set_num_threads(before)
