"""No new empty output folder after a failed or interrupted command.

A command that creates its ``--out`` folder and then fails (bad input found late, Ctrl-C while
loading data) would otherwise leave an empty or useless folder behind, which the next run may
even refuse as "exists". ``removed_on_failure`` removes the folder it saw appear, unless it
already holds what a later run resumes from.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def removed_on_failure(
    path: str | Path, resumable: Callable[[Path], bool] = lambda path: False
) -> Iterator[Path]:
    """Run the body; if it raises (or is interrupted) and ``path`` did not exist before it,
    remove ``path`` unless ``resumable(path)`` says it holds work to resume from."""
    path = Path(path)
    existed = path.exists() or path.is_symlink()
    try:
        yield path
    except BaseException:
        if not existed and path.is_dir() and not path.is_symlink() and not resumable(path):
            shutil.rmtree(path, ignore_errors=True)
        raise
