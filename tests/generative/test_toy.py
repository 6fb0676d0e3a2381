"""The toy helpers that tests and benchmarks share."""

from __future__ import annotations

import numpy as np

from generative.toy import DetourConfig, detour_chunk_sides


def test_detour_chunk_sides_counts_chunks_ending_off_the_axis():
    config = DetourConfig()
    chunks = np.zeros((4, 8, 2), dtype=np.float32)
    chunks[:, :, 0] = 1.0  # all move forwards
    chunks[0, :, 1] = 1.0  # ends 0.8 above the start
    chunks[1, :, 1] = -0.5  # ends 0.4 below
    chunks[3, :, 1] = 0.05  # ends 0.04 above: within the margin, on the axis
    assert detour_chunk_sides(chunks, config) == (0.25, 0.25)
    assert detour_chunk_sides(chunks, config, margin=0.01) == (0.5, 0.25)
