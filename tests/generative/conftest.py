"""One torch thread for the generative tests: their models are tiny, and on a shared 2-core
machine a second OpenMP thread makes small-batch training an order of magnitude slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
