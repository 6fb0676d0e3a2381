"""Poses: structure from motion on ``DATASET/images/`` with pycolmap (COLMAP 4 on the CPU).

Stages: SIFT feature extraction, matching, mapping. Matching is either exhaustive
(every pair; small unordered sets) or sequential with loop closure (videos): each frame is matched
with its next ``sequential_overlap`` frames and a few frames at doubling distances, and evenly
spaced keyframes are matched with each other so that a trajectory that comes back to where it
started (an orbit, a loop around a block) is closed. COLMAP's own loop detection needs a
vocabulary tree file downloaded from the internet, so the keyframe pairs replace it; the pair
list goes to ``pycolmap.match_image_pairs``. A video's frames get the video profile
(``sfm_config``: SIFT without upsampling, plain matching, a short window); photos the thorough
one. Mapping (``auto``) runs COLMAP's global mapper first (GLOMAP: rotation averaging, then all
positions at once; Pan et al. 2024, "Global Structure-from-Motion Revisited"): it does not
grow the model from one initial pair, so a bad start cannot strand frames, and on forward
captures it is several times faster; when it returns no model at all it gets the next seed
(up to ``mapping_attempts``). While frames stay unregistered, the incremental mapper
(randomised: initial pair, RANSAC) gets up to three seeds and the largest model is kept.

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
from dataclasses import asdict
from pathlib import Path
from typing import Any

from common.atomic import atomic_path, write_json_atomic
from scene_builder.capture import natural_key
from scene_builder.datasets import (
    SPARSE_POINTS_FILE,
    TRANSFORMS_FILE,
    PosedDataset,
    save_dataset,
)
from scene_builder.errors import PoseError
from scene_builder.importers import COLMAP_DIR, IMAGES_DIR, frames_from_reconstruction
from scene_builder.sfm_config import Resolved, SfmConfig, resolve
from scene_builder.sfm_pairs import exhaustive_pairs, from_video, sequential_pairs
from scene_builder.sfm_report import SfmReport, focal_warnings

__all__ = ["SfmConfig", "SfmReport", "recover_poses", "sequential_pairs"]

WORK_DIR = ".sfm"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# Images and pairs handed to COLMAP per call: small enough for a live progress bar.
EXTRACTION_CHUNK = 8
MATCHING_CHUNK = 64
# Mapping is not tried again once the largest model holds this share of the frames.
WELL_REGISTERED = 0.95


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
    return SfmReport.stored(root, previous)


class _Stages:
    """Runs the three COLMAP stages with a progress bar over images, pairs and registrations."""

    def __init__(
        self, root: Path, names: list[str], config: SfmConfig, resolved: Resolved, progress
    ) -> None:
        import pycolmap

        self.pycolmap = pycolmap
        self.root = root
        self.images = root / IMAGES_DIR
        self.work = root / WORK_DIR
        self.database = self.work / "database.db"
        self.names = names
        self.config = config
        self.resolved = resolved
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
        options.sift.first_octave = self.resolved.first_octave
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
        matching.guided_matching = self.resolved.guided_matching
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
            # The global positioning occasionally fails outright on a capture it maps on the
            # next seed (every track filtered before bundle adjustment); another global try
            # costs less than the incremental fallback, which places a forward path less reliably.
            for attempt in range(self.config.mapping_attempts):
                seed = self.config.seed + attempt
                best, used = self._map_global(seed), "global"
                self.tries.append(f"global seed {seed}: {_largest_size(best)}")
                if best:
                    break
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

    def _map_global(self, seed: int) -> dict:
        """COLMAP's global mapper (GLOMAP) on the same database."""
        pycolmap = self.pycolmap
        options = pycolmap.GlobalPipelineOptions()
        options.num_threads = self.config.num_threads
        options.random_seed = options.mapper.random_seed = seed
        options.min_model_size = max(3, min(10, len(self.names) // 4))
        if self.resolved.tracks_per_view:
            options.mapper.track_required_tracks_per_view = self.resolved.tracks_per_view
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


def _prepare_work(root: Path, settings: dict) -> Path:
    """``DATASET/.sfm/``, kept from an interrupted run with the same settings and images."""
    work = root / WORK_DIR
    settings_file = work / "settings.json"
    if work.exists() and (
        not settings_file.is_file() or json.loads(settings_file.read_text()) != settings
    ):
        shutil.rmtree(work)  # other features or images: start again
    work.mkdir(exist_ok=True)
    write_json_atomic(settings_file, settings)
    return work


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
    resolved = resolve(config, len(names), from_video(root))
    work = _prepare_work(root, {"settings": _settings(config), **asdict(resolved), "images": names})
    pairs = (
        exhaustive_pairs(len(names))
        if resolved.matcher == "exhaustive"
        else sequential_pairs(len(names), resolved.sequential_overlap, config.loop_keyframes)
    )
    seconds: dict[str, float] = {}  # wall time per stage
    cpu: dict[str, float] = {}  # CPU time per stage, all threads (what the stage would need alone)
    try:
        with progress_bar() as progress:
            stages = _Stages(root, names, config, resolved, progress)
            for stage, run in (
                ("features", stages.extract),
                ("matching", lambda: stages.match(pairs)),
                ("mapping", stages.map),
            ):
                started, started_cpu = time.perf_counter(), time.process_time()
                result = run()
                seconds[stage] = time.perf_counter() - started
                cpu[stage] = time.process_time() - started_cpu
        models, mapper = result
        prior = stages.prior_focal()
        report = _write_outputs(
            root,
            names,
            models,
            config,
            (resolved, len(pairs), mapper, stages.tries),
            (seconds, cpu),
            prior,
        )
    except PoseError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


def _write_outputs(
    root: Path,
    names: list[str],
    models: dict,
    config: SfmConfig,
    how: tuple[Resolved, int, str, list[str]],
    timing: tuple[dict[str, float], dict[str, float]],
    prior_focal: float | None,
) -> SfmReport:
    """Keep the largest model; write colmap/, the points PLY and transforms.json (last)."""
    resolved, pairs, mapper, tries = how  # settings, pairs matched, mapper kept, every try
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
        matcher=resolved.matcher,
        points=largest.num_points3D(),
        mapper=mapper,
        mapping_tries=tries,
        seconds=timing[0],
        cpu_seconds=timing[1],
        warnings=focal_warnings(models, prior_focal),
        settings=resolved.describe(),
        pairs=pairs,
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
