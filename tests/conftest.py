"""Shared fixtures: where the real captures live (../shared/data) and small derived copies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DRIVEENV_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real captures described in shared/data/README.md (bird_capture, lund_street)."""
    if not (SHARED_DATA / "bird_capture").is_dir():
        pytest.fail(f"real captures not found at {SHARED_DATA}; set DRIVEENV_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _limit_threads():
    """One torch thread: small-batch training is faster single-threaded, and pybullet and open3d
    use the other core."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
