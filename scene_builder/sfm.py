"""Poses: structure from motion on ``DATASET/images/`` with pycolmap (COLMAP 4 on the CPU).

Stages: SIFT feature extraction, matching, mapping. Matching is either exhaustive
(every pair; small unordered sets) or sequential with loop closure (videos): each frame is matched
with its next ``sequential_overlap`` frames and a few frames at doubling distances, and evenly
spaced keyframes are matched with each other so that a trajectory that comes back to where it
started (an orbit, a loop around a block) is closed. COLMAP's own loop detection needs a
vocabulary tree file downloaded from the internet, so the keyframe pairs replace it; the pair
list goes to ``pycolmap.match_image_pairs``. Mapping (``auto``) runs COLMAP's global mapper
first (GLOMAP: rotation averaging, then all positions at once; Pan et al. 2024, "Global
Structure-from-Motion Revisited"): it does not grow the model from one initial pair, so a bad
start cannot strand frames, and on forward captures it is several times faster. While frames
stay unregistered, the incremental mapper (randomised: initial pair, RANSAC) gets up to three
seeds and the largest model is kept.

Neither mapper is repeatable run to run on a short forward capture (threads in matching and
bundle adjustment): the global positioning of a path seen only forward can place one stretch at
another scale than the next, and the street's metric scale (``align``) inherits that.

All work happens in ``DATASET/.sfm/`` (the COLMAP database, the pair list, the mapper's models).
Features and matches are added in chunks, and COLMAP skips images and pairs already in the
database, so an interrupted run resumes where it stopped. Only when a model is found are the
outputs written: ``DATASET/colmap/`` (the largest model), ``DATASET/sparse_points.ply`` and
finally ``DATASET/transforms.json``. A failed run removes its work folder and leaves the dataset
as it was.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.atomic import atomic_path, write_json_atomic
from common.config_cli import option
from scene_builder.capture import natural_key
from scene_builder.datasets import (
    SPARSE_POINTS_FILE,
    TRANSFORMS_FILE,
    PosedDataset,
    save_dataset,
)
from scene_builder.errors import PoseError
from scene_builder.importers import COLMAP_DIR, IMAGES_DIR, frames_from_reconstruction
from scene_builder.sfm_pairs import choose_matcher, exhaustive_pairs, from_video, sequential_pairs

WORK_DIR = ".sfm"
MATCHERS = ("auto", "sequential", "exhaustive")
# "auto": the global mapper, then incremental seeds while frames stay unregistered.
MAPPERS = ("auto", "incremental", "global")
CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# Images and pairs handed to COLMAP per call: small enough for a live progress bar.
EXTRACTION_CHUNK = 8
MATCHING_CHUNK = 64
# Largest relative change of the focal length from its EXIF value before the report warns
# (EXIF focal lengths of phone videos are rough: a correct solve can differ by a quarter).
FOCAL_TOLERANCE = 0.35
# Mapping is not tried again once the largest model holds this share of the frames.
WELL_REGISTERED = 0.95


@dataclass(frozen=True)
class SfmConfig:
    """Structure-from-motion settings; the defaults suit phone videos on a laptop CPU."""

    matcher: str = option(
        "auto",
        "sequential (+ loop closure) for videos, exhaustive for small unordered sets; auto: "
        "sequential for a video's frames, else exhaustive up to --exhaustive-up-to images",
        choices=MATCHERS,
    )
    camera_model: str = option(
        "SIMPLE_RADIAL", "COLMAP camera model shared by all frames", choices=CAMERA_MODELS
    )
    max_image_size: int = option(1024, "longest side, in pixels, features are extracted at")
    max_features: int = option(4096, "SIFT features per image")
    # Guided matching re-matches each pair under its estimated two-view geometry: about 3x the
    # matching time, and far more mapping seeds register every frame of a fragile capture.
    guided_matching: bool = option(
        True, "re-match each pair under its two-view geometry (slower matching, robust mapping)"
    )
    sequential_overlap: int = option(10, "frames each frame is matched with, going forward")
    loop_keyframes: int = option(30, "evenly spaced frames matched with each other (loop closure)")
    exhaustive_up_to: int = option(40, "largest image count matched exhaustively by auto")
    min_registered: float = option(
        0.3, "fail unless the largest model holds at least this share of the frames"
    )
    mapping_attempts: int = option(3, "mapping seeds tried while frames stay unregistered")
    mapper: str = option(
        "auto",
        "auto: COLMAP's global mapper, then incremental seeds while frames stay unregistered",
        choices=MAPPERS,
    )
    num_threads: int = option(-1, "threads of feature extraction and matching (-1: all cores)")
    seed: int = option(0, "seed of the mapper's RANSAC")

    def validate(self) -> None:
        if self.matcher not in MATCHERS:
            raise PoseError(f"--matcher {self.matcher}: must be one of {', '.join(MATCHERS)}")
        if self.mapper not in MAPPERS:
            raise PoseError(f"--mapper {self.mapper}: must be one of {', '.join(MAPPERS)}")
        if self.camera_model not in CAMERA_MODELS:
            raise PoseError(
                f"--camera-model {self.camera_model}: must be one of {', '.join(CAMERA_MODELS)}"
            )
        if self.max_image_size < 64 or self.max_features < 64:
            raise PoseError("--max-image-size and --max-features must be at least 64")
        if self.mapping_attempts < 1:
            raise PoseError(f"mapping_attempts {self.mapping_attempts}: must be at least 1")
        if not 0.0 < self.min_registered <= 1.0:
            raise PoseError(f"--min-registered {self.min_registered}: must be in (0, 1]")


@dataclass
class SfmReport:
    """What the mapper found: the kept model's registration and error, and every model's size."""

    root: Path
    total: int
    registered: int
    mean_reprojection_error: float
    model_sizes: list[int]
    failed_frames: list[str]
    matcher: str
    points: int
    mapper: str = "incremental"  # the mapper whose model was kept
    mapping_tries: list[str] = field(default_factory=list)  # each try's largest model
    skipped: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.skipped:
            return f"{self.root}: poses already recovered with these settings"
        lines = [
            f"{self.root}: registered {self.registered}/{self.total} frames "
            f"({self.matcher} matching, {self.mapper} mapper), {self.points} points, "
            f"mean reprojection error {self.mean_reprojection_error:.2f} px",
        ]
        if len(self.model_sizes) > 1:
            sizes = ", ".join(str(s) for s in self.model_sizes)
            lines.append(
                f"  {len(self.model_sizes)} models came out (frames: {sizes}); kept the largest"
            )
        if len(self.mapping_tries) > 1:
            lines.append(f"  mapping tries: {'; '.join(self.mapping_tries)}")
        if self.failed_frames:
            lines.append(f"  not registered: {', '.join(self.failed_frames)}")
        lines.extend(f"  warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)


def _largest_size(models: dict) -> int:
    return max((model.num_reg_images() for model in models.values()), default=0)


def _image_names(image_dir: Path) -> list[str]:
    if not image_dir.is_dir():
        raise PoseError(f"{image_dir}: no images folder (run 'driveenv capture' first)")
    names = sorted(
        (p.name for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
        key=natural_key,
    )
    if len(names) < 3:
        raise PoseError(f"{image_dir}: has {len(names)} images; structure from motion needs more")
    return names


def _settings(config: SfmConfig) -> dict[str, Any]:
    """The settings that change features and matches (a different value restarts the work)."""
    return {
        key: value
        for key, value in asdict(config).items()
        if key not in ("num_threads", "seed", "min_registered", "mapping_attempts", "mapper")
    }


def _existing_report(root: Path, config: SfmConfig) -> SfmReport | None:
    """The report of an earlier run with the same settings, if its transforms.json is there."""
    if not (root / TRANSFORMS_FILE).is_file():
        return None
    try:
        previous = json.loads((root / TRANSFORMS_FILE).read_text()).get("driveenv", {}).get("sfm")
    except (json.JSONDecodeError, AttributeError):
        return None
    if not previous or previous.get("config") != asdict(config):
        return None
    return SfmReport(
        root,
        previous["total"],
        previous["registered"],
        previous["mean_reprojection_error"],
        previous["model_sizes"],
        previous["failed_frames"],
        previous["matcher"],
        previous["points"],
        mapper=previous.get("mapper", "incremental"),
        mapping_tries=previous.get("mapping_tries", []),
        skipped=True,
        warnings=previous.get("warnings", []),
    )


class _Stages:
    """Runs the three COLMAP stages with a progress bar over images, pairs and registrations."""

    def __init__(self, root: Path, names: list[str], config: SfmConfig, progress) -> None:
        import pycolmap

        self.pycolmap = pycolmap
        self.root = root
        self.images = root / IMAGES_DIR
        self.work = root / WORK_DIR
        self.database = self.work / "database.db"
        self.names = names
        self.config = config
        self.progress = progress
        self.tries: list[str] = []  # "mapper: frames in its largest model", in order
        # COLMAP's log goes to DATASET/.sfm/colmap.log.*; only its errors reach the terminal.
        pycolmap.logging.alsologtostderr = False
        pycolmap.logging.logtostderr = False
        pycolmap.logging.stderrthreshold = 2
        pycolmap.logging.set_log_destination(pycolmap.logging.INFO, self.work / "colmap.log.")

    def extract(self) -> None:
        pycolmap = self.pycolmap
        options = pycolmap.FeatureExtractionOptions()
        options.max_image_size = self.config.max_image_size
        options.num_threads = self.config.num_threads
        options.sift.max_num_features = self.config.max_features
        task = self.progress.add_task("features", total=len(self.names), status="")
        for start in range(0, len(self.names), EXTRACTION_CHUNK):
            reader = pycolmap.ImageReaderOptions()
            reader.camera_model = self.config.camera_model
            camera_id = self._camera_id()
            if camera_id is not None:
                reader.existing_camera_id = camera_id
            pycolmap.extract_features(
                self.database,
                self.images,
                image_names=self.names[start : start + EXTRACTION_CHUNK],
                camera_mode=pycolmap.CameraMode.SINGLE,
                reader_options=reader,
                extraction_options=options,
                device=pycolmap.Device.cpu,
            )
            self.progress.update(task, completed=min(len(self.names), start + EXTRACTION_CHUNK))

    def _first_camera(self):
        """The camera shared by the frames, as stored in the database (None before features)."""
        if not self.database.exists():
            return None
        database = self.pycolmap.Database.open(self.database)
        try:
            cameras = database.read_all_cameras()
        finally:
            database.close()
        return cameras[0] if cameras else None

    def prior_focal(self) -> float | None:
        """The focal length the images' EXIF gave, in pixels (None without EXIF)."""
        camera = self._first_camera()
        if camera is None or not camera.has_prior_focal_length:
            return None
        return float(camera.mean_focal_length())

    def _camera_id(self) -> int | None:
        camera = self._first_camera()
        return int(camera.camera_id) if camera is not None else None

    def match(self, pairs: list[tuple[int, int]]) -> None:
        pycolmap = self.pycolmap
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = self.config.num_threads
        matching.guided_matching = self.config.guided_matching
        task = self.progress.add_task("matching", total=len(pairs), status=f"{len(pairs)} pairs")
        pair_file = self.work / "pairs.txt"
        for start in range(0, len(pairs), MATCHING_CHUNK):
            chunk = pairs[start : start + MATCHING_CHUNK]
            pair_file.write_text("".join(f"{self.names[i]} {self.names[j]}\n" for i, j in chunk))
            pairing = pycolmap.ImportedPairingOptions()
            pairing.match_list_path = pair_file
            pycolmap.match_image_pairs(
                self.database,
                matching_options=matching,
                pairing_options=pairing,
                device=pycolmap.Device.cpu,
            )
            self.progress.update(task, completed=start + len(chunk))

    def map(self) -> tuple[dict, str]:
        """The models of the best mapping, and which mapper made them.

        ``auto`` runs COLMAP's global mapper first: it solves every camera at once (rotation
        averaging, then positions), so no unlucky initial pair strands frames, and on forward
        captures it is several times faster than incremental mapping. Only while frames stay
        unregistered does the incremental mapper (randomised: initial pair, RANSAC) get a few
        seeds; the largest model is kept.
        """
        well_registered = WELL_REGISTERED * len(self.names)
        best, used = {}, "incremental"
        if self.config.mapper != "incremental":
            best, used = self._map_global(), "global"
            self.tries.append(f"global: {_largest_size(best)}")
            if _largest_size(best) >= well_registered:
                return best, used
        if self.config.mapper != "global":
            for attempt in range(self.config.mapping_attempts):
                models = self._map_once(self.config.seed + attempt, attempt)
                self.tries.append(
                    f"incremental seed {self.config.seed + attempt}: {_largest_size(models)}"
                )
                if _largest_size(models) > _largest_size(best):
                    best, used = models, "incremental"
                if _largest_size(best) >= well_registered:
                    break
        return best, used

    def _map_global(self) -> dict:
        """COLMAP's global mapper (GLOMAP) on the same database."""
        pycolmap = self.pycolmap
        options = pycolmap.GlobalPipelineOptions()
        options.num_threads = self.config.num_threads
        options.random_seed = options.mapper.random_seed = self.config.seed
        options.min_model_size = max(3, min(10, len(self.names) // 4))
        task = self.progress.add_task("mapping (global)", total=1, status="")
        output = self.work / "sparse_global"
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir(parents=True)
        models = pycolmap.global_mapping(self.database, self.images, output, options=options)
        self.progress.update(task, completed=1, status="registered")
        return models

    def _map_once(self, seed: int, attempt: int) -> dict:
        pycolmap = self.pycolmap
        options = pycolmap.IncrementalPipelineOptions()
        options.num_threads = self.config.num_threads
        options.random_seed = seed
        options.mapper.random_seed = seed
        options.triangulation.random_seed = seed
        options.min_model_size = max(3, min(10, len(self.names) // 4))
        # Phone videos of low-texture scenes give a few hundred SIFT features per frame; COLMAP's
        # defaults (100 inliers to start, 30 to add a frame) split such captures into models.
        options.mapper.init_min_num_inliers = 50
        options.mapper.abs_pose_min_num_inliers = 15
        label = "mapping" if attempt == 0 else f"mapping ({attempt + 1})"
        task = self.progress.add_task(label, total=len(self.names), status="registered")
        registered = [0]

        def next_image() -> None:
            registered[0] += 1
            self.progress.update(task, completed=min(registered[0] + 1, len(self.names)))

        output = self.work / f"sparse{attempt}"
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir(parents=True)
        models = pycolmap.incremental_mapping(
            self.database, self.images, output, options=options, next_image_callback=next_image
        )
        self.progress.update(task, completed=len(self.names))
        return models


def recover_poses(
    dataset: str | Path, config: SfmConfig | None = None, overwrite: bool = False
) -> SfmReport:
    """Run structure from motion on ``dataset/images`` and write the posed dataset."""
    from common.progress import progress_bar

    config = config or SfmConfig()
    config.validate()
    root = Path(dataset).expanduser().resolve()
    names = _image_names(root / IMAGES_DIR)
    existing = _existing_report(root, config)
    if existing is not None and not overwrite:
        return existing
    if (root / TRANSFORMS_FILE).is_file() and not overwrite:
        raise PoseError(
            f"{root / TRANSFORMS_FILE}: already holds poses made otherwise; "
            "pass --overwrite to replace them"
        )
    work = root / WORK_DIR
    settings_file = work / "settings.json"
    settings = {"settings": _settings(config), "images": names}
    if work.exists() and (
        not settings_file.is_file() or json.loads(settings_file.read_text()) != settings
    ):
        shutil.rmtree(work)  # other features or images: start again
    work.mkdir(exist_ok=True)
    write_json_atomic(settings_file, settings)

    matcher = choose_matcher(config, len(names), from_video(root))
    pairs = (
        exhaustive_pairs(len(names))
        if matcher == "exhaustive"
        else sequential_pairs(len(names), config.sequential_overlap, config.loop_keyframes)
    )
    seconds: dict[str, float] = {}
    try:
        with progress_bar() as progress:
            stages = _Stages(root, names, config, progress)
            for stage, run in (
                ("features", stages.extract),
                ("matching", lambda: stages.match(pairs)),
                ("mapping", stages.map),
            ):
                started = time.perf_counter()
                result = run()
                seconds[stage] = time.perf_counter() - started
        models, mapper = result
        prior = stages.prior_focal()
        report = _write_outputs(
            root, names, models, config, (matcher, mapper, stages.tries), seconds, prior
        )
    except PoseError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


def _focal_warnings(models: dict, prior: float | None) -> list[str]:
    """A warning when the solved focal length strays far (35%) from the one in the images' EXIF.

    EXIF focal lengths are good to a few percent; a mapper that moves far from one has usually
    bent the scene (forward motion along a street is the classic case).
    """
    if prior is None or not models:
        return []
    largest = max(models.values(), key=lambda model: model.num_reg_images())
    solved = float(next(iter(largest.cameras.values())).mean_focal_length())
    if abs(solved / prior - 1.0) <= FOCAL_TOLERANCE:
        return []
    return [
        f"the focal length moved from {prior:.0f} px (EXIF) to {solved:.0f} px; the "
        "reconstruction may be bent: try a larger --max-image-size or more frames"
    ]


def _write_outputs(
    root: Path,
    names: list[str],
    models: dict,
    config: SfmConfig,
    how: tuple[str, str, list[str]],
    seconds: dict[str, float],
    prior_focal: float | None,
) -> SfmReport:
    """Keep the largest model; write colmap/, the points PLY and transforms.json (last)."""
    matcher, mapper, tries = how  # the matcher, the mapper kept, every mapping try
    if not models:
        raise PoseError(
            f"{root / IMAGES_DIR}: structure from motion found no model (tries: "
            f"{'; '.join(tries)}; blank, unrelated or too few overlapping images?)"
        )
    ordered = sorted(models.values(), key=lambda model: model.num_reg_images(), reverse=True)
    largest = ordered[0]
    registered = largest.num_reg_images()
    if registered < config.min_registered * len(names):
        raise PoseError(
            f"{root / IMAGES_DIR}: structure from motion registered only {registered} of "
            f"{len(names)} images (models: {[m.num_reg_images() for m in ordered]}; tries: "
            f"{'; '.join(tries)}); the images may be unrelated, blank or too far apart"
        )
    registered_names = {image.name for image in largest.images.values() if image.has_pose}
    report = SfmReport(
        root=root,
        total=len(names),
        registered=registered,
        mean_reprojection_error=float(largest.compute_mean_reprojection_error()),
        model_sizes=[m.num_reg_images() for m in ordered],
        failed_frames=[name for name in names if name not in registered_names],
        matcher=matcher,
        points=largest.num_points3D(),
        mapper=mapper,
        mapping_tries=tries,
        seconds=seconds,
        warnings=_focal_warnings(models, prior_focal),
    )
    with atomic_path(root / COLMAP_DIR) as tmp:
        tmp.mkdir()
        largest.write_binary(str(tmp))
    with atomic_path(root / SPARSE_POINTS_FILE) as tmp:
        largest.export_PLY(str(tmp.with_suffix(".ply")))
        tmp.with_suffix(".ply").rename(tmp)
    frames = frames_from_reconstruction(largest, root / IMAGES_DIR)
    extras = {
        "source": {"kind": "sfm", "path": str(root / IMAGES_DIR)},
        "colmap_model": COLMAP_DIR,
        "sparse_points": SPARSE_POINTS_FILE,
        "sfm": {
            "config": asdict(config),
            **{k: v for k, v in asdict(report).items() if k not in ("root", "skipped")},
        },
    }
    save_dataset(PosedDataset(root, frames, extras=extras))
    return report
