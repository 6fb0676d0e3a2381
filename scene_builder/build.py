"""``driveenv build-scene``: video -> frames -> poses -> world frame -> field -> geometry -> bundle.

Each stage writes into its own folder under the work directory (default ``OUT.build/``) and
marks it done with ``stage.json`` holding the stage's parameters. Running the same command again
skips every finished stage whose parameters are unchanged, so an interrupted build resumes where
it stopped (field training resumes from its own checkpoint); a changed parameter re-runs that
stage and every stage after it. The bundle itself is written atomically at the end.

The stages call the modules that own each step: ``capture`` and ``sfm`` (or ``importers`` when
reference poses are given with ``--poses``), ``align``, ``train`` and ``mesh``; the last two
stages call ``assembly``, which turns a field and a posed dataset into geometry and geometry into
a bundle.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.atomic import write_json_atomic
from common.config_cli import option
from scene_builder.align import UP_METHODS, AlignConfig
from scene_builder.assembly import (
    STAGE_FILE,
    geometry_from_field,
    geometry_from_points,
    write_bundle,
)
from scene_builder.errors import BundleError
from scene_builder.mesh import MeshConfig

STAGES = ("frames", "poses", "align", "field", "mesh", "bundle")
KIND_NOTES = {
    "road": "the cameras look along their path: ground, map and tasks follow the path",
    "arena": "the cameras look across their path: an area they circle",
}
# A map with less of its region drivable than this cannot hold an arena's tasks.
MIN_DRIVABLE_SHARE = 0.03


@dataclass
class BuildConfig:
    """Every option of a build; each stage records the subset it depends on."""

    poses_from: str | None = option(
        None,
        "import these reference poses (COLMAP model folder or LLFF poses_bounds.npy) instead "
        "of running structure from motion; INPUT is then their image folder",
        flag="poses",
    )
    max_frames: int = option(300, "frames sampled evenly from a video")
    frame_downscale: float = option(1.0, "divide frame width and height by this (1 = full size)")
    up: str = option("auto", "as 'driveenv align --up'", choices=UP_METHODS)
    scale: str | None = option(
        None,
        "as 'driveenv align --scale': camera-height=H or distance=I,J,D (metres), or gps",
        parse=AlignConfig.check_scale,
    )
    field_steps: int | None = option(3000, "field training steps")
    field_minutes: float | None = option(
        None, "train the field for about this many minutes instead of --field-steps"
    )
    field_downscale: int = option(4, "train the field on the images divided by this")
    lighting_augmentation: bool = option(
        True, "train the field under random exposure/white-balance/gamma changes too"
    )
    geometry: str = option(
        "field",
        "field: fuse depth rendered by the trained field (the accurate path); points: convex "
        "obstacles from the sparse SfM points on a ground plate, coloured from the images "
        "(for when the field could not be trained well enough to give depth)",
        choices=("field", "points"),
    )
    mesh: MeshConfig = field(default_factory=MeshConfig)
    tasks: int = option(16, "spawn/goal/route triples to sample")
    task_clearance: float | None = option(
        None, "metres a task keeps from obstacles (default: 4% of the arena radius)"
    )
    goal_radius: float | None = option(
        None,
        "radius of the sampled goals, metres (default: 6% of the arena radius)",
        flag="task-goal-radius",
    )
    name: str | None = option(None, "scene name (default: OUT's folder name)")
    seed: int = option(0, "seed of every stage (RANSAC, field training, task sampling)")

    def __post_init__(self) -> None:
        """Refuse what a later stage would, before the first stage runs."""
        if self.scale:
            AlignConfig.check_scale(self.scale)
        counts = {
            "--max-frames": self.max_frames,
            "--frame-downscale": self.frame_downscale,
            "--field-downscale": self.field_downscale,
            "--field-steps": 1 if self.field_steps is None else self.field_steps,
            "--tasks": self.tasks,
        }
        low = [f"{flag} {value}" for flag, value in counts.items() if value < 1]
        if low:
            raise BundleError(f"{', '.join(low)}: must be at least 1")


@dataclass
class StageResult:
    name: str
    folder: Path
    seconds: float
    cached: bool


Reporter = Callable[[str, str], None]  # (stage, message)


class SceneBuild:
    """One build: the stages in order, each cached in ``work/<stage>/``."""

    def __init__(self, source: str | Path, out: str | Path, config: BuildConfig, work=None):
        self.source = Path(source).expanduser().resolve()
        self.out = Path(out).expanduser().resolve()
        self.config = config
        self.work = Path(work).resolve() if work else self.out.with_name(self.out.name + ".build")
        self.results: list[StageResult] = []
        self.scene = None  # the written SceneBundle, once the bundle stage has run
        self._invalidated = False

    # ------------------------------------------------------------------ stage plumbing
    def _params(self, stage: str) -> dict[str, Any]:
        c = self.config
        mesh = asdict(c.mesh)
        table: dict[str, dict[str, Any]] = {
            "frames": {
                "source": str(self.source),
                "max_frames": c.max_frames,
                "downscale": c.frame_downscale,
            },
            "poses": {"poses_from": c.poses_from, "seed": c.seed},
            "align": {"up": c.up, "scale": c.scale, "seed": c.seed},
            # the whole training config, field sizes included: new defaults retrain the field
            "field": {
                key: value
                for key, value in self._field_config().to_json().items()
                if key not in ("eval_every", "checkpoint_seconds")  # do not change the field
            },
            "mesh": {**mesh, "geometry": c.geometry},
            "bundle": {
                "tasks": c.tasks,
                "clearance": c.task_clearance,
                "goal_radius": c.goal_radius,
                "name": c.name,
                "seed": c.seed,
            },
        }
        if c.poses_from:
            table["frames"] = {"skipped": "poses imported with their images"}
            table["poses"]["source"] = str(self.source)
        return table[stage]

    def _field_config(self):
        from scene_builder.train import TrainConfig

        return TrainConfig(
            downscale=self.config.field_downscale,
            steps=self.config.field_steps,
            max_minutes=self.config.field_minutes,
            lighting_augmentation=self.config.lighting_augmentation,
            seed=self.config.seed,
        )

    def folder(self, stage: str) -> Path:
        return self.work / f"{STAGES.index(stage) + 1}_{stage}"

    def _is_done(self, stage: str) -> bool:
        marker = self.folder(stage) / STAGE_FILE
        if self._invalidated or not marker.is_file():
            return False
        try:
            return json.loads(marker.read_text()).get("params") == _jsonable(self._params(stage))
        except (OSError, json.JSONDecodeError):
            return False

    def _mark_done(self, stage: str, seconds: float) -> None:
        write_json_atomic(
            self.folder(stage) / STAGE_FILE,
            {"stage": stage, "params": _jsonable(self._params(stage)), "seconds": seconds},
        )

    def run(self, overwrite: bool = False, report: Reporter | None = None) -> Path:
        """Run every stage not already done; returns the bundle path."""
        if self.out.exists() and not overwrite:
            raise BundleError(f"{self.out}: already exists (pass --overwrite to rebuild it)")
        report = report or (lambda stage, message: print(f"[{stage}] {message}", flush=True))
        self._check_inputs()
        self.work.mkdir(parents=True, exist_ok=True)
        for index, stage in enumerate(STAGES, start=1):
            label = f"{index}/{len(STAGES)} {stage}"
            if self._is_done(stage):
                report(label, f"cached in {self.folder(stage)}")
                self.results.append(StageResult(stage, self.folder(stage), 0.0, True))
                continue
            self._invalidated = True  # every later stage depends on this one
            report(label, "running")
            tick = time.perf_counter()
            getattr(self, f"_stage_{stage}")(
                report=lambda message, label=label: report(label, message)
            )
            seconds = time.perf_counter() - tick
            if stage != "bundle":
                self._mark_done(stage, seconds)
            self.results.append(StageResult(stage, self.folder(stage), seconds, False))
            report(label, f"done in {seconds:.1f} s")
        return self.out

    def _check_inputs(self) -> None:
        """Refuse a missing input, or ``--scale gps`` on input without GPS, before the first stage
        (a typo would otherwise cost a stage)."""
        if not self.source.exists():
            raise BundleError(f"{self.source}: no such video or image folder")
        poses = self.config.poses_from
        if poses and not Path(poses).expanduser().exists():
            raise BundleError(f"--poses {poses}: no such COLMAP folder or poses_bounds.npy")
        if self.config.scale == "gps":
            from scene_builder.gps import check_source

            check_source(self.source)  # a video or untagged photos fail before the poses

    # ------------------------------------------------------------------ stages
    def _stage_frames(self, report) -> None:
        if self.config.poses_from:
            self.folder("frames").mkdir(parents=True, exist_ok=True)
            report("skipped: --poses imports the images with the poses")
            return
        from scene_builder.capture import CaptureConfig, capture

        config = CaptureConfig(
            max_frames=self.config.max_frames, downscale=self.config.frame_downscale
        )
        capture(self.source, self.folder("frames"), config, overwrite=True)

    def _stage_poses(self, report) -> None:
        target = self.folder("poses")
        if self.config.poses_from:
            from scene_builder.importers import import_poses

            images = self.source if self.source.is_dir() else None
            import_poses(self.config.poses_from, target, images=images, overwrite=True)
            return
        from scene_builder.sfm import SfmConfig, recover_poses

        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.folder("frames"), target)
        result = recover_poses(target, SfmConfig(seed=self.config.seed), overwrite=True)
        for line in result.summary().splitlines():  # models, tries, warnings: all of it
            report(line)

    def _stage_align(self, report) -> None:
        from scene_builder.align import AlignConfig, align_dataset

        target = self.folder("align")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.folder("poses"), target)
        (target / STAGE_FILE).unlink(missing_ok=True)
        config = AlignConfig.from_cli(
            up=self.config.up, scale=self.config.scale, seed=self.config.seed
        )
        result = align_dataset(target, config)
        for line in result.summary().splitlines():
            report(line)
        kind = result.extras.get("scene_kind", "arena")
        report(f"scene kind: {kind} ({KIND_NOTES[kind]})")
        if kind == "road" and not result.metric:
            report(
                "warning: no --scale, so the car is sized in camera heights (1.5 m each); "
                "give --scale camera-height=H for metres"
            )

    def _stage_field(self, report) -> None:
        from scene_builder.train import STATE_FILE, train_field

        target = self.folder("field")
        config = self._field_config()
        resume = (target / STATE_FILE).is_file()
        if not resume:
            shutil.rmtree(target, ignore_errors=True)

        from common.progress import progress_bar

        with progress_bar() as bar:
            task = bar.add_task("training the field", total=config.steps, status="")

            def step(trainer) -> None:
                bar.update(task, completed=trainer.step, total=trainer.planned_steps)

            def status(trainer, rays_per_second, psnr) -> None:
                bar.update(
                    task, status=f"{rays_per_second:,.0f} rays/s, held-out PSNR {psnr:.2f} dB"
                )

            trainer = train_field(
                self.folder("align"),
                target,
                config,
                resume=resume,
                overwrite=True,
                on_status=status,
                callback=step,
            )
        report(f"{trainer.step} steps, held-out PSNR {trainer.holdout_psnr():.2f} dB")

    def _stage_mesh(self, report) -> None:
        if self.config.geometry == "points":
            geometry = geometry_from_points(self.folder("align"), self.config.mesh)
        else:
            geometry = geometry_from_field(
                self.folder("field"), self.folder("align"), self.config.mesh
            )
        report(
            f"{geometry.stats['faces']} faces, map {geometry.drivable.grid.mean() * 100:.1f}% "
            f"drivable of a {2 * geometry.region.radius:.2f} m square"
        )
        check_geometry(geometry, report)
        geometry.save(self.folder("mesh"))

    def _stage_bundle(self, report) -> None:
        from scene_builder.mesh import Geometry

        c = self.config
        self.scene = write_bundle(
            Geometry.load(self.folder("mesh")),
            self.out,
            field_dir=self.folder("field"),
            dataset_dir=self.folder("align"),
            name=c.name or self.out.name,
            tasks=c.tasks,
            task_clearance=c.task_clearance,
            goal_radius=c.goal_radius,
            seed=c.seed,
            extras={
                "source": str(self.source),
                "build_seconds": {r.name: round(r.seconds, 1) for r in self.results},
            },
            overwrite=True,  # run() refused an existing bundle unless --overwrite
        )
        report(f"wrote {self.out}")


def check_geometry(geometry, report: Callable[[str], None]) -> None:
    """Stop the build when the geometry cannot make a usable scene, saying what to change."""
    stats = geometry.stats
    if stats.get("scene_kind") == "road":
        report(
            f"road: route {stats['route_length']:.1f} m, {stats['route_covered'] * 100:.0f}% on "
            f"drivable cells, drivable width median {stats['width_median']:.2f} m, "
            f"min {stats['width_min']:.2f} m"
        )
        from scene_builder.geometry.ground import RoadPrior
        from scene_builder.road import MIN_ROUTE_CARS

        road = RoadPrior.from_json(stats["road"])
        car = road.vehicle_size()["vehicle_length"]
        if stats["route_length"] < MIN_ROUTE_CARS * car:
            raise BundleError(
                f"the camera path is {stats['route_length']:.1f} m long, under "
                f"{MIN_ROUTE_CARS:.0f} car lengths ({car:.2f} m): no route to drive; film a "
                "longer stretch of road, or check --scale camera-height"
            )
        return
    share = float(geometry.drivable.grid.mean())
    if share < MIN_DRIVABLE_SHARE:
        ground = stats.get("ground_prior")
        raise BundleError(
            f"the drivable map is {share * 100:.1f}% of the region (under "
            f"{MIN_DRIVABLE_SHARE * 100:.0f}%): "
            + (
                "no ground was found under the region: raise --ground-tolerance, lower "
                "--region-radius, or film the ground around the scene from more sides"
                if ground
                else "the cameras do not circle an area, so there is no ground prior: film "
                "around the area, or film along a road (the camera looking where it goes)"
            )
        )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


def build_scene(
    source: str | Path,
    out: str | Path,
    config: BuildConfig | None = None,
    work: str | Path | None = None,
    overwrite: bool = False,
    report: Reporter | None = None,
) -> SceneBuild:
    """Run (or resume) a build; returns the finished ``SceneBuild`` with per-stage timings."""
    build = SceneBuild(source, out, config or BuildConfig(), work)
    build.run(overwrite=overwrite, report=report)
    return build
