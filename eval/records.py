"""Reading one episode record of an evaluation directory, with a one-line error when damaged.

A record (``episodes/AGENT/CONDITION/seed_S.json``) is written atomically, but a copy, a full
disk or a hand edit can still leave it truncated. ``driveenv report`` then names the file;
``driveenv evaluate`` run again on the same --out recomputes that episode (``is_finished`` is
False for a damaged record) and says so.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from eval.errors import CampaignError


def read_record(path: Path, columns: Iterable[str]) -> dict[str, Any]:
    """The record at ``path``; ``CampaignError`` naming it when it is not a complete record."""
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CampaignError(
            f"{path}: damaged episode record ({type(error).__name__}: {str(error)[:80]}); "
            "run 'driveenv evaluate' again with the same --out to recompute it"
        ) from None
    missing = [c for c in columns if not isinstance(record, dict) or c not in record]
    if missing:
        raise CampaignError(
            f"{path}: episode record without {', '.join(missing)}; "
            "run 'driveenv evaluate' again with the same --out to recompute it"
        )
    return record


def is_finished(path: Path, columns: Iterable[str], warn: bool = True) -> bool:
    """Whether the episode of record ``path`` is done; a damaged record is not (it is redone,
    and replaced when the episode is saved again), and ``warn`` says so on stderr."""
    if not path.is_file():
        return False
    try:
        read_record(path, columns)
    except CampaignError as error:
        if warn:
            print(
                f"warning: {str(error).split('; ')[0]}; recomputing that episode", file=sys.stderr
            )
        return False
    return True
