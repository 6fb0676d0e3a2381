"""A CPU-bound competing process for ``--contention`` runs of the speed benchmarks.

A user's machine is never idle: the learner, SubprocVecEnv workers or a browser share its cores.
``competing_process`` starts one process that spins on one core for as long as the block runs,
so a benchmark can repeat a measurement beside it and report loaded / idle per row (issue 17:
with one competitor on 2 cores every renderer and the field trainer should keep at least 40%).
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator


def _spin(stop) -> None:
    count = 0
    while not stop.is_set():
        for _ in range(200_000):
            count += 1


@contextlib.contextmanager
def competing_process() -> Iterator[None]:
    """Run the block beside one busy-looping process (forked; stopped and joined on exit)."""
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    process = context.Process(target=_spin, args=(stop,), daemon=True)
    process.start()
    try:
        yield
    finally:
        stop.set()
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()
            process.join()
