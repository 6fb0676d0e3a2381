"""Rollout videos (``driveenv rollout``, one vehicle or several): checked arguments and an mp4
written to a temporary name, renamed into place only when complete."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from simulator.errors import SimulatorError


def checked_video_path(out: str | Path, overwrite: bool, episodes: int) -> Path:
    """``out`` as a Path, or a one-line error: not .mp4, already there, or no episode asked."""
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise SimulatorError(f"{out}: the video must be an .mp4 file")
    if out.exists() and not overwrite:
        raise SimulatorError(f"{out}: already exists (pass --overwrite to replace it)")
    if episodes < 1:
        raise SimulatorError(f"--episodes {episodes}: must be at least 1")
    return out


class VideoFile:
    """``with VideoFile(out, fps) as video: video.write(rgb)``; ``out`` appears only if the block
    ends without an error (the partial file is removed otherwise)."""

    def __init__(self, out: Path, fps: int) -> None:
        self.out, self.fps = Path(out), int(fps)
        self.partial = self.out.with_name(f".{self.out.stem}.partial{self.out.suffix}")
        self._writer = None

    def write(self, rgb: np.ndarray, repeat: int = 1) -> None:
        """Append the (H, W, 3) RGB frame ``repeat`` times (the first frame sets the size)."""
        import cv2

        if self._writer is None:
            height, width = rgb.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self.partial), fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                raise SimulatorError(f"{self.out}: OpenCV cannot write an mp4 video here")
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        for _ in range(repeat):
            self._writer.write(bgr)

    def __enter__(self) -> VideoFile:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if self._writer is not None:
            self._writer.release()
        if error_type is None and self._writer is not None:
            os.replace(self.partial, self.out)
        self.partial.unlink(missing_ok=True)
