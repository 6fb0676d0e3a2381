"""Which image pairs structure from motion matches: neighbours of ordered frames, or all pairs.

Matching is the costly stage on a CPU, so the pair list decides how long ``driveenv poses``
takes: a video's frames are matched with their neighbours, a few frames at doubling distances
and evenly spaced keyframes (loop closure, in place of COLMAP's vocabulary-tree detection whose
file needs a download); a small folder of unordered photos is matched exhaustively.
"""

from __future__ import annotations

import json
from pathlib import Path

from scene_builder.capture import MANIFEST_FILE


def sequential_pairs(count: int, overlap: int, keyframes: int) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, for ordered frames: neighbours, doubling jumps and a keyframe loop.

    Keyframes are spaced at least ``overlap`` frames apart: closer ones are neighbours already,
    and a dense keyframe set on a short clip would make the matching exhaustive.
    """
    pairs: set[tuple[int, int]] = set()
    for i in range(count):
        for j in range(i + 1, min(count, i + overlap + 1)):
            pairs.add((i, j))
        jump = overlap * 2
        while i + jump < count:
            pairs.add((i, i + jump))
            jump *= 2
    keyframes = min(keyframes, count // max(overlap, 1))
    if keyframes >= 2:
        step = max(1, round(count / keyframes))
        keys = list(range(0, count, step))
        for a, i in enumerate(keys):
            for j in keys[a + 1 :]:
                pairs.add((i, j))
    return sorted(pairs)


def exhaustive_pairs(count: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(count) for j in range(i + 1, count)]


def from_video(root: Path) -> bool:
    """Whether ``driveenv capture`` took the frames from a video (its manifest says so)."""
    try:
        return json.loads((root / MANIFEST_FILE).read_text()).get("source_kind") == "video"
    except (OSError, json.JSONDecodeError, AttributeError):
        return False
