"""Torch threads sized to the free cores: never more than asked, never zero, always restored."""

from __future__ import annotations

import os

import torch

from common.threads import free_cores, torch_threads


def test_free_cores_is_between_one_and_the_allowed_cores():
    assert 1 <= free_cores() <= len(os.sched_getaffinity(0))


def test_torch_threads_caps_the_block_and_restores_the_setting():
    before = torch.get_num_threads()
    with torch_threads(1) as threads:
        assert threads == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with torch_threads(64) as threads:
        assert 1 <= threads <= free_cores() + 1  # the count may change between two reads
        assert torch.get_num_threads() == threads
    assert torch.get_num_threads() == before
