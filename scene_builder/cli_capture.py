"""Sub-commands of ``driveenv`` from scene_builder: capture, poses, import-poses, align."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields

from common.commands import add_command
from common.config_cli import add_config, make_config, option


@dataclass
class CaptureCommand:
    """Input and output of ``driveenv capture`` (the sampling options are CaptureConfig's)."""

    input: str = option(help="video file (mp4, mov, avi, mkv) or folder of images")
    out: str = option(help="dataset folder to create")
    overwrite: bool = option(False, "replace an existing dataset")


@dataclass
class PosesCommand:
    """The dataset of ``driveenv poses`` (the mapping options are SfmConfig's)."""

    dataset: str = option(help="dataset folder made by 'driveenv capture'")
    overwrite: bool = option(False, "replace existing poses (transforms.json)")


@dataclass
class ImportPosesCommand:
    """Options of ``driveenv import-poses``."""

    source: str = option(
        help="COLMAP model folder (bin or txt), poses_bounds.npy or transforms.json"
    )
    out: str = option(help="dataset folder to create")
    images: str | None = option(
        None, "folder of the images (default: images/ beside the COLMAP project or the .npy)"
    )
    overwrite: bool = option(False, "replace an existing dataset")


def _check_scale(text: str) -> str:
    from scene_builder.align import AlignConfig

    return AlignConfig.check_scale(text)


@dataclass
class AlignCommand:
    """The dataset and scale of ``driveenv align`` (the other options are AlignConfig's)."""

    dataset: str = option(help="dataset folder with transforms.json")
    scale: str | None = option(
        None,
        "camera-height=H (cameras are H metres above the ground), "
        "distance=I,J,D (frames I and J are D metres apart) or gps (the GPS positions in the "
        "images' EXIF); omitted: keep SfM units",
        parse=_check_scale,
    )


def _options(command: type, config: str | None = None, exclude=()):
    """Options of ``command`` (its first field positional), then those of the config class
    named ``module:Class`` (imported only when the command is parsed)."""

    def add(parser) -> None:
        add_config(parser, command, positional=(fields(command)[0].name,))
        if config:
            module, name = config.split(":")
            add_config(parser, getattr(importlib.import_module(module), name), exclude=exclude)

    return add


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
    add_command(
        subparsers,
        "capture",
        run_capture,
        help="Sample sharp frames from a video or an image folder into DATASET/images/.",
        examples="""
  driveenv capture ../shared/data/bird_capture/bird.mp4 --out runs/bird --max-frames 120
  driveenv capture ../shared/data/lund_street/images --out runs/lund --frame-downscale 2
  driveenv capture walk.mov --out runs/walk --min-sharpness 0.6 --overwrite
""",
        options=_options(CaptureCommand, "scene_builder.capture:CaptureConfig"),
    )
    add_command(
        subparsers,
        "poses",
        run_poses,
        help="Recover camera poses of DATASET/images/ with pycolmap (structure from motion).",
        examples="""
  driveenv poses runs/bird
  driveenv poses runs/lund --matcher exhaustive --max-image-size 800
  driveenv poses runs/walk --camera-model OPENCV --overwrite
""",
        options=_options(PosesCommand, "scene_builder.sfm:SfmConfig"),
    )
    add_command(
        subparsers,
        "import-poses",
        run_import_poses,
        help="Import a COLMAP model, an LLFF poses_bounds.npy or a nerfstudio transforms.json.",
        examples="""
  driveenv import-poses ../shared/data/bird_capture/sparse/0 --out runs/bird_ref
  driveenv import-poses ../shared/data/bird_capture/poses_bounds.npy --out runs/bird_llff
  driveenv import-poses polycam_export/transforms.json --out runs/room
  driveenv import-poses my_colmap/sparse/0 --images my_colmap/images --out runs/mine
""",
        options=_options(ImportPosesCommand),
    )
    add_command(
        subparsers,
        "align",
        run_align,
        help="Move a posed dataset to the world frame: z up, ground at z=0, metres.",
        examples="""
  driveenv align runs/lund --scale camera-height=1.6
  driveenv align runs/bird --up ground --scale distance=0,46,0.9
  driveenv align runs/walk --up cameras
""",
        options=_options(
            AlignCommand,
            "scene_builder.align:AlignConfig",
            exclude=("camera_height", "distance", "gps"),
        ),
    )


def run_capture(args) -> int:
    from scene_builder.capture import CaptureConfig, capture

    command = make_config(CaptureCommand, args)
    config = make_config(CaptureConfig, args)
    result = capture(command.input, command.out, config, overwrite=command.overwrite)
    if result.skipped:
        print(f"{result.root}: already captured with these arguments ({result.kept} frames)")
    else:
        print(
            f"{result.root}: kept {result.kept} frames of {result.decoded} "
            f"(dropped {result.dropped_blurry} blurry)"
        )
    return 0


def run_poses(args) -> int:
    from scene_builder.sfm import SfmConfig, recover_poses

    command = make_config(PosesCommand, args)
    report = recover_poses(
        command.dataset, make_config(SfmConfig, args), overwrite=command.overwrite
    )
    print(report.summary())
    return 0


def run_import_poses(args) -> int:
    from scene_builder.importers import import_poses

    command = make_config(ImportPosesCommand, args)
    dataset = import_poses(
        command.source, command.out, images=command.images, overwrite=command.overwrite
    )
    kind = dataset.extras["source"]["kind"]
    print(f"{dataset.root}: imported {len(dataset)} posed images from a {kind} source")
    return 0


def run_align(args) -> int:
    from scene_builder.align import AlignConfig, align_dataset

    command = make_config(AlignCommand, args)
    scale = AlignConfig.from_cli("auto", command.scale)  # camera height, distance or gps
    config = make_config(
        AlignConfig,
        args,
        camera_height=scale.camera_height,
        distance=scale.distance,
        gps=scale.gps,
    )
    report = align_dataset(command.dataset, config)
    print(report.summary())
    return 0
