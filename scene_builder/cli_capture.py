"""Sub-commands of ``driveenv`` from scene_builder: capture, poses, import-poses, align."""

from __future__ import annotations

from common.commands import add_command


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
    command = add_command(
        subparsers,
        "capture",
        run_capture,
        help="Sample sharp frames from a video or an image folder into DATASET/images/.",
        examples="""
  driveenv capture ../shared/data/bird_capture/bird.mp4 --out runs/bird --max-frames 120
  driveenv capture ../shared/data/lund_street/images --out runs/lund --downscale 2
  driveenv capture walk.mov --out runs/walk --min-sharpness 0.6 --overwrite
""",
    )
    command.add_argument("input", help="video file (mp4, mov, avi, mkv) or folder of images")
    command.add_argument("--out", required=True, help="dataset folder to create")
    command.add_argument("--max-frames", type=int, default=300, help="frames to sample evenly")
    command.add_argument(
        "--downscale", type=float, default=1.0, help="divide image width and height by this"
    )
    command.add_argument(
        "--min-sharpness",
        type=float,
        default=0.5,
        help="drop frames whose Laplacian variance is below this share of their neighbours'",
    )
    command.add_argument("--overwrite", action="store_true", help="replace an existing dataset")

    command = add_command(
        subparsers,
        "poses",
        run_poses,
        help="Recover camera poses of DATASET/images/ with pycolmap (structure from motion).",
        examples="""
  driveenv poses runs/bird
  driveenv poses runs/lund --matcher exhaustive --max-image-size 800
  driveenv poses runs/walk --camera-model OPENCV --overwrite
""",
    )
    command.add_argument("dataset", help="dataset folder made by 'driveenv capture'")
    command.add_argument(
        "--matcher",
        choices=("auto", "sequential", "exhaustive"),
        default="auto",
        help="sequential (+ loop closure) for videos, exhaustive for small unordered sets",
    )
    command.add_argument(
        "--camera-model",
        choices=("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV"),
        default="SIMPLE_RADIAL",
        help="COLMAP camera model shared by all frames",
    )
    command.add_argument(
        "--max-image-size", type=int, default=1024, help="longest side used for features"
    )
    command.add_argument("--max-features", type=int, default=4096, help="SIFT features per image")
    command.add_argument(
        "--no-guided-matching",
        dest="guided_matching",
        action="store_false",
        help="match once, without re-matching under each pair's geometry (3x faster matching, "
        "less robust mapping)",
    )
    command.add_argument(
        "--min-registered",
        type=float,
        default=0.3,
        help="fail unless the largest model holds at least this share of the frames",
    )
    command.add_argument(
        "--mapper",
        choices=("auto", "incremental", "global"),
        default="auto",
        help="auto: incremental mapping (3 seeds), then COLMAP's global mapper while frames stay "
        "unregistered",
    )
    command.add_argument("--seed", type=int, default=0, help="seed of the mapper's RANSAC")
    command.add_argument(
        "--overwrite", action="store_true", help="replace existing poses (transforms.json)"
    )

    command = add_command(
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
    )
    command.add_argument(
        "source", help="COLMAP model folder (bin or txt), poses_bounds.npy or transforms.json"
    )
    command.add_argument("--out", required=True, help="dataset folder to create")
    command.add_argument(
        "--images",
        help="folder of the images (default: images/ beside the COLMAP project or the .npy)",
    )
    command.add_argument("--overwrite", action="store_true", help="replace an existing dataset")

    command = add_command(
        subparsers,
        "align",
        run_align,
        help="Move a posed dataset to the world frame: z up, ground at z=0, metres.",
        examples="""
  driveenv align runs/lund --scale camera-height=1.6
  driveenv align runs/bird --up ground --scale distance=0,46,0.9
  driveenv align runs/walk --up cameras
""",
    )
    command.add_argument("dataset", help="dataset folder with transforms.json")
    command.add_argument(
        "--up",
        choices=("auto", "cameras", "ground"),
        default="auto",
        help="ground: RANSAC plane of the sparse points; cameras: mean camera up; "
        "auto: ground when it is found, else cameras",
    )
    command.add_argument(
        "--scale",
        help="camera-height=H (cameras are H metres above the ground) or "
        "distance=I,J,D (frames I and J are D metres apart); omitted: keep SfM units",
    )
    command.add_argument("--seed", type=int, default=0, help="seed of the RANSAC plane fit")


def run_capture(args) -> int:
    from scene_builder.capture import CaptureConfig, capture

    config = CaptureConfig(
        max_frames=args.max_frames, downscale=args.downscale, min_sharpness=args.min_sharpness
    )
    result = capture(args.input, args.out, config, overwrite=args.overwrite)
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

    config = SfmConfig(
        matcher=args.matcher,
        camera_model=args.camera_model,
        max_image_size=args.max_image_size,
        max_features=args.max_features,
        guided_matching=args.guided_matching,
        min_registered=args.min_registered,
        mapper=args.mapper,
        seed=args.seed,
    )
    report = recover_poses(args.dataset, config, overwrite=args.overwrite)
    print(report.summary())
    return 0


def run_import_poses(args) -> int:
    from scene_builder.importers import import_poses

    dataset = import_poses(args.source, args.out, images=args.images, overwrite=args.overwrite)
    kind = dataset.extras["source"]["kind"]
    print(f"{dataset.root}: imported {len(dataset)} posed images from a {kind} source")
    return 0


def run_align(args) -> int:
    from scene_builder.align import AlignConfig, align_dataset

    config = AlignConfig.from_cli(up=args.up, scale=args.scale, seed=args.seed)
    report = align_dataset(args.dataset, config)
    print(report.summary())
    return 0
