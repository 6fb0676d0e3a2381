"""Capture: a video or a folder of images → ``DATASET/images/`` and ``DATASET/manifest.json``.

Frames are sampled evenly: the source is cut into ``max_frames`` equal windows and the sharpest
frame of each window's middle half is kept (sharpness = variance of the Laplacian, measured at a
fixed working resolution so that it compares across sources; the middle half keeps the chosen
frames evenly spaced). A kept frame is then dropped as blurry when its sharpness is below
``min_sharpness`` times the median of its neighbours' (the seven nearest kept frames): absolute
Laplacian variance depends on the scene's texture, so only a comparison with the neighbourhood
says whether a frame is blurred by motion. Decoding is one pass with OpenCV, holding one
candidate image at a time: a window's winner is written as soon as the next window starts.

The dataset is built in a temporary sibling folder and renamed into place, so an interrupted or
failed capture leaves nothing behind. Re-running with the same arguments and an unchanged source
does nothing; other arguments are refused unless ``overwrite`` is set.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from common.atomic import atomic_path, write_json_atomic
from common.config_cli import option
from scene_builder.errors import CaptureError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MANIFEST_FILE = "manifest.json"
IMAGES_DIR = "images"
# Structure from motion needs a handful of overlapping views; fewer is always a mistake.
MIN_FRAMES = 8
# Sharpness is measured on a grey image whose longer side is this many pixels.
SHARPNESS_SIDE = 512
# A kept frame is compared with this many kept neighbours on each side.
NEIGHBOURS_EACH_SIDE = 3
# A video that decodes fewer than this share of its declared frames is truncated.
MIN_DECODED_SHARE = 0.9
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class CaptureConfig:
    """How frames are chosen and stored."""

    max_frames: int = option(300, "frames sampled evenly from a video")
    downscale: float = option(
        1.0, "divide frame width and height by this (1 = full size)", flag="frame-downscale"
    )
    min_sharpness: float = option(
        0.5, "drop frames whose Laplacian variance is below this share of their neighbours'"
    )
    jpeg_quality: int = option(95, "JPEG quality of the stored frames")

    def validate(self) -> None:
        if self.max_frames < MIN_FRAMES:
            raise CaptureError(f"--max-frames {self.max_frames}: must be at least {MIN_FRAMES}")
        if self.downscale < 1.0:
            raise CaptureError(f"--frame-downscale {self.downscale}: must be >= 1 (1 = full size)")
        if not 0.0 <= self.min_sharpness < 1.0:
            raise CaptureError(f"--min-sharpness {self.min_sharpness}: must be in [0, 1)")


@dataclass
class Candidate:
    """The sharpest frame seen so far in one sampling window."""

    index: int
    sharpness: float
    image: np.ndarray | None = None
    source_file: Path | None = None
    name: str = ""  # file name under images/ once stored


@dataclass(frozen=True)
class CaptureResult:
    root: Path
    kept: int
    dropped_blurry: int
    decoded: int
    skipped: bool  # True when the dataset was already up to date


def natural_key(name: str) -> list[int | str]:
    """Sort key that puts IMG_9.jpg before IMG_10.jpg (the order a camera wrote them)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def sharpness(image_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image at the working resolution."""
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
    scale = SHARPNESS_SIDE / max(grey.shape)
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def relative_sharpness(values: np.ndarray) -> np.ndarray:
    """Each value divided by the median of itself and its nearest neighbours on both sides."""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty_like(values)
    for i in range(len(values)):
        lo, hi = max(0, i - NEIGHBOURS_EACH_SIDE), min(len(values), i + NEIGHBOURS_EACH_SIDE + 1)
        median = float(np.median(values[lo:hi]))
        out[i] = values[i] / median if median > 0 else 0.0
    return out


def window_of(index: int, total: int, windows: int) -> int | None:
    """The evenly spaced sampling window that source frame ``index`` may be chosen for.

    Only the middle half of a window competes (when windows hold four frames or more), so
    that the sharpest frames of neighbouring windows cannot end up side by side.
    """
    position = index * windows / max(total, 1)
    window = min(windows - 1, int(position))
    if total >= 4 * windows and not 0.25 <= position - window < 0.75:
        return None
    return window


# --- sources ----------------------------------------------------------------------------------


@dataclass
class Source:
    """Frames of a video or an image folder, with what the manifest records about them."""

    path: Path
    kind: str  # "video" or "images"
    declared_frames: int
    fps: float | None
    files: list[Path]  # image folders only

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        if self.kind == "video":
            yield from _video_frames(self.path)
        else:
            for index, file in enumerate(self.files):
                image = cv2.imread(str(file), cv2.IMREAD_COLOR)
                if image is None:
                    raise CaptureError(f"{file}: not a readable image")
                yield index, image

    def fingerprint(self) -> dict[str, Any]:
        """Size and modification time: a changed source invalidates an earlier capture."""
        files = [self.path] if self.kind == "video" else self.files
        return {
            "bytes": sum(f.stat().st_size for f in files),
            "mtime_ns": max(f.stat().st_mtime_ns for f in files),
        }


def _video_frames(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    video = cv2.VideoCapture(str(path))
    try:
        index = 0
        while True:
            ok, image = video.read()
            if not ok:
                return
            yield index, image
            index += 1
    finally:
        video.release()


def _looks_like_container(path: Path) -> bool:
    """True when the file starts like an MP4/MOV, Matroska or AVI container."""
    with path.open("rb") as file:
        head = file.read(16)
    return head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3" or head[:4] == b"RIFF"


def open_source(path: str | Path) -> Source:
    """Inspect INPUT: a readable video with enough frames, or a folder with enough images."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise CaptureError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: natural_key(p.name),
        )
        if len(files) < MIN_FRAMES:
            raise CaptureError(
                f"{path}: has {len(files)} images ({', '.join(IMAGE_SUFFIXES)}); "
                f"at least {MIN_FRAMES} are needed"
            )
        return Source(path, "images", len(files), None, files)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise CaptureError(
            f"{path}: not a video ({', '.join(VIDEO_SUFFIXES)}) or a folder of images"
        )
    video = cv2.VideoCapture(str(path))
    try:
        if not video.isOpened():
            if path.stat().st_size > 0 and _looks_like_container(path):
                raise CaptureError(
                    f"{path}: the video container cannot be decoded (truncated or corrupt file)"
                )
            raise CaptureError(f"{path}: not a readable video")
        declared = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(video.get(cv2.CAP_PROP_FPS)) or None
        if declared <= 0:  # some containers do not say: count by grabbing without decoding
            declared = 0
            while video.grab():
                declared += 1
    finally:
        video.release()
    if declared == 0:
        raise CaptureError(f"{path}: not a readable video (no frames could be read)")
    if declared < MIN_FRAMES:
        raise CaptureError(
            f"{path}: has only {declared} frames; at least {MIN_FRAMES} are needed "
            "for structure from motion"
        )
    return Source(path, "video", declared, fps, [])


# --- capture ----------------------------------------------------------------------------------


def _manifest_args(source: Source, config: CaptureConfig) -> dict[str, Any]:
    return {"input": str(source.path), **asdict(config), "source": source.fingerprint()}


def _check_existing(out: Path, args: dict[str, Any], overwrite: bool) -> bool:
    """True when ``out`` already holds this very capture; raise if it holds something else."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise CaptureError(f"{out}: exists and is not a folder")
    if not any(out.iterdir()):
        return False
    manifest = out / MANIFEST_FILE
    previous = None
    if manifest.is_file():
        try:
            previous = json.loads(manifest.read_text()).get("args")
        except (json.JSONDecodeError, AttributeError):
            previous = None
    if previous == args and (out / IMAGES_DIR).is_dir() and not overwrite:
        return True
    if overwrite:
        return False
    what = "a capture with other arguments or source" if previous else "other files"
    raise CaptureError(f"{out}: already holds {what}; pass --overwrite to replace it")


def _resize(image: np.ndarray, downscale: float) -> np.ndarray:
    if downscale == 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width / downscale)), max(1, round(height / downscale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _select(
    source: Source,
    config: CaptureConfig,
    on_frame: Callable[[int], None],
    store: Callable[[Candidate], None],
) -> tuple[list[Candidate], int]:
    """One pass over the source: the sharpest frame of each window, and how many were decoded.

    Windows are contiguous, so a window's winner is final once a later window starts: it is
    handed to ``store`` right away and its pixels dropped, keeping one or two frames in memory
    whatever the video's length and resolution.
    """
    windows = min(config.max_frames, source.declared_frames)
    chosen: list[Candidate] = []
    current: Candidate | None = None
    current_window = -1
    decoded = 0
    for index, image in source.frames():
        decoded += 1
        on_frame(decoded)
        window = window_of(index, source.declared_frames, windows)
        if window is None:
            continue
        if window != current_window and current is not None:
            store(current)
            current.image = None
            chosen.append(current)
            current = None
        current_window = window
        value = sharpness(image)
        if current is None or value > current.sharpness:
            file = source.files[index] if source.kind == "images" else None
            current = Candidate(index, value, image, file)
    if source.kind == "video" and decoded < MIN_DECODED_SHARE * source.declared_frames:
        raise CaptureError(
            f"{source.path}: truncated or corrupt video: decoded {decoded} of "
            f"{source.declared_frames} declared frames"
        )
    if current is not None:
        store(current)
        current.image = None
        chosen.append(current)
    return chosen, decoded


def _write_frame(candidate: Candidate, config: CaptureConfig, images: Path) -> str:
    """Store one kept frame, keeping the source's EXIF (its focal length helps the SfM).

    Full-size JPEGs from a folder are copied byte for byte; other frames are re-encoded from the
    decoded pixels (OpenCV has already applied any EXIF rotation, so the copy says "upright").
    """
    file = candidate.source_file
    if file is not None and config.downscale == 1.0 and file.suffix.lower() in (".jpg", ".jpeg"):
        shutil.copy2(file, images / file.name)
        return file.name
    name = f"{file.stem}.jpg" if file is not None else f"frame_{candidate.index:05d}.jpg"
    image = _resize(candidate.image, config.downscale)
    if file is None:
        if not cv2.imwrite(
            str(images / name), image, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality]
        ):
            raise CaptureError(f"{images / name}: could not be written")
        return name
    from PIL import Image

    with Image.open(file) as original:
        exif = original.getexif()
    exif[EXIF_ORIENTATION] = 1
    rgb = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    rgb.save(images / name, quality=config.jpeg_quality, exif=exif.tobytes())
    return name


def capture(
    input_path: str | Path,
    out: str | Path,
    config: CaptureConfig | None = None,
    overwrite: bool = False,
) -> CaptureResult:
    """Turn a video or image folder into ``out/images/`` plus ``out/manifest.json``."""
    from common.progress import progress_bar

    config = config or CaptureConfig()
    config.validate()
    out = Path(out).expanduser().resolve()
    source = open_source(input_path)
    args = _manifest_args(source, config)
    if _check_existing(out, args, overwrite):
        manifest = json.loads((out / MANIFEST_FILE).read_text())
        return CaptureResult(
            out, len(manifest["frames"]), len(manifest["dropped_blurry"]), manifest["decoded"], True
        )

    with atomic_path(out) as tmp:
        images = tmp / IMAGES_DIR
        images.mkdir(parents=True)

        def store(candidate: Candidate) -> None:
            candidate.name = _write_frame(candidate, config, images)

        with progress_bar() as progress:
            task = progress.add_task("reading frames", total=source.declared_frames, status="")
            candidates, decoded = _select(
                source, config, lambda n: progress.update(task, completed=n), store
            )
        ratios = relative_sharpness([c.sharpness for c in candidates])
        kept = [
            (c, r) for c, r in zip(candidates, ratios, strict=True) if r >= config.min_sharpness
        ]
        if len(kept) < MIN_FRAMES:
            raise CaptureError(
                f"{source.path}: only {len(kept)} frames are sharp enough (need {MIN_FRAMES}); "
                "lower --min-sharpness"
            )
        dropped = []
        for candidate, ratio in zip(candidates, ratios, strict=True):
            if ratio < config.min_sharpness:
                (images / candidate.name).unlink()
                dropped.append(candidate.index)
        frames = [
            {
                "file_path": f"{IMAGES_DIR}/{candidate.name}",
                "source_index": candidate.index,
                "source_file": candidate.source_file.name if candidate.source_file else None,
                "timestamp_s": candidate.index / source.fps if source.fps else None,
                "sharpness": round(candidate.sharpness, 3),
                "relative_sharpness": round(float(ratio), 4),
            }
            for candidate, ratio in kept
        ]
        manifest = {
            "source": str(source.path),
            "source_kind": source.kind,
            "fps": source.fps,
            "declared": source.declared_frames,
            "decoded": decoded,
            "args": args,
            "frames": frames,
            "dropped_blurry": dropped,
        }
        write_json_atomic(tmp / MANIFEST_FILE, manifest)
    return CaptureResult(out, len(kept), len(dropped), decoded, False)


def load_manifest(dataset: str | Path) -> dict[str, Any]:
    """The capture manifest of a dataset, or CaptureError if it has none."""
    path = Path(dataset) / MANIFEST_FILE
    if not path.is_file():
        raise CaptureError(f"{path}: no capture manifest (run 'driveenv capture')")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CaptureError(f"{path}: not valid JSON ({error})") from None
