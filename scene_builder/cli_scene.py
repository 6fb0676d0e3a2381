"""Sub-commands of ``driveenv`` from scene_builder: mesh, build-scene, scene-info, synthetic-scene."""

from __future__ import annotations

from pathlib import Path

from common.commands import add_command


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
    _register_mesh(subparsers)
    _register_build(subparsers)
    info = add_command(
        subparsers,
        "scene-info",
        scene_info,
        help="Validate a scene bundle, print a summary and render a preview image "
        "(top-down map with spawns and goals, one camera view per lighting preset).",
        examples="""
  driveenv scene-info assets/scenes/bird
  driveenv scene-info assets/scenes/bird --preview bird_preview.png --image-size 160
  driveenv scene-info my_scene --no-preview""",
    )
    info.add_argument("scene", type=Path, help="scene bundle directory")
    info.add_argument(
        "--preview",
        type=Path,
        default=None,
        help="preview PNG to write (default: SCENE_preview.png beside the bundle)",
    )
    info.add_argument("--no-preview", action="store_true", help="only print the summary")
    info.add_argument("--image-size", type=int, default=128, help="side of each camera view")
    info.add_argument(
        "--renderer",
        choices=("auto", "field", "mesh"),
        default="auto",
        help="camera views from the radiance field or the baked mesh (auto: field if present)",
    )
    info.add_argument("--overwrite", action="store_true", help="replace an existing preview")
    synthetic = add_command(
        subparsers,
        "synthetic-scene",
        synthetic_scene,
        help="Write the synthetic table-top test scene (textured plate with cliff edges and "
        "boxes, no field): the scene the agent benchmarks and tests train in.",
        examples="  driveenv synthetic-scene --out runs/synthetic\n"
        "  driveenv synthetic-scene --out runs/synthetic-7 --seed 7",
    )
    synthetic.add_argument("--out", type=Path, required=True, help="scene bundle directory")
    synthetic.add_argument("--seed", type=int, default=0, help="boxes, texture and tasks")
    synthetic.add_argument("--overwrite", action="store_true", help="replace an existing bundle")


def synthetic_scene(args) -> int:
    from scene_builder.synthetic import make_synthetic_scene

    path = make_synthetic_scene(args.out, seed=args.seed, overwrite=args.overwrite)
    print(f"synthetic scene: {path}")
    return 0


def scene_info(args) -> int:
    from scene_builder.bundle import load_scene
    from scene_builder.preview import scene_summary

    scene = load_scene(args.scene)
    print(scene_summary(scene))
    if args.no_preview:
        return 0
    from scene_builder.errors import BundleError
    from scene_builder.preview import write_preview

    target = args.preview or scene.root.with_name(f"{scene.root.name}_preview.png")
    if target.exists() and not args.overwrite:
        raise BundleError(f"{target}: already exists (pass --overwrite to replace it)")
    write_preview(scene, target, image_size=args.image_size, renderer=args.renderer)
    print(f"preview: {target}")
    return 0


def _add_mesh_options(command) -> None:
    command.add_argument(
        "--target-faces", type=int, default=120_000, help="face budget of the collision mesh"
    )
    command.add_argument(
        "--resolution", type=int, default=256, help="TSDF voxels across the arena's width"
    )
    command.add_argument(
        "--region-radius",
        type=float,
        default=None,
        help="arena radius in metres around the orbit centre (default: 2x the cameras' radius)",
    )
    command.add_argument(
        "--depth-views", type=int, default=92, help="training views rendered for depth fusion"
    )
    command.add_argument(
        "--depth-scale",
        type=float,
        default=0.25,
        help="size of the rendered training views as a fraction of the captured images",
    )
    command.add_argument(
        "--virtual-views",
        type=int,
        default=16,
        help="virtual cameras per ring (three rings near the ground) rendered for depth fusion",
    )
    command.add_argument(
        "--min-surface-opacity",
        type=float,
        default=0.5,
        help="light a band one field cell around a pixel's depth must stop for the pixel to be fused",
    )
    command.add_argument(
        "--no-ground-prior",
        action="store_true",
        help="fuse the field's own ground instead of the plane z = 0 inside the cameras' circle",
    )
    command.add_argument("--tasks", type=int, default=16, help="spawn/goal/route triples to sample")
    command.add_argument("--seed", type=int, default=0, help="seed of the task sampling")
    command.add_argument("--overwrite", action="store_true", help="replace an existing bundle")


def _mesh_config(args):
    from scene_builder.errors import MeshError
    from scene_builder.mesh import MeshConfig

    if args.target_faces < 100 or args.resolution < 16:
        raise MeshError(
            f"--target-faces {args.target_faces} / --resolution {args.resolution}: "
            "need at least 100 faces and 16 voxels"
        )
    if not 0 <= args.min_surface_opacity <= 1:
        raise MeshError(f"--min-surface-opacity {args.min_surface_opacity}: must be in [0, 1]")
    if args.depth_views < 1 or args.virtual_views < 0 or not 0 < args.depth_scale <= 1:
        raise MeshError(
            f"--depth-views {args.depth_views} / --virtual-views {args.virtual_views} / "
            f"--depth-scale {args.depth_scale}: need at least 1 view, no negative count, "
            "and a scale in (0, 1]"
        )
    return MeshConfig(
        resolution=args.resolution,
        target_faces=args.target_faces,
        max_training_views=args.depth_views,
        render_scale=args.depth_scale,
        virtual_views=args.virtual_views,
        region_radius=args.region_radius,
        min_surface_opacity=args.min_surface_opacity,
        ground_prior=not args.no_ground_prior,
    )


def _register_mesh(subparsers) -> None:
    command = add_command(
        subparsers,
        "mesh",
        run_mesh,
        help="Turn a trained field into a scene bundle: collision mesh (TSDF of rendered depth), "
        "visual mesh with baked colours, drivable map, spawns, goals and routes.",
        examples="""
  driveenv mesh runs/bird_field --out runs/bird_scene
  driveenv mesh runs/bird_field --out runs/bird_scene --target-faces 60000 --resolution 320
  driveenv mesh runs/field --dataset runs/aligned --out runs/scene --region-radius 0.6""",
    )
    command.add_argument("field", type=Path, help="field directory from 'driveenv train-field'")
    command.add_argument("--out", type=Path, required=True, help="scene bundle directory to write")
    command.add_argument(
        "--dataset",
        type=Path,
        default=None,
        help="posed dataset (world frame) whose cameras are rendered (default: the field's own)",
    )
    _add_mesh_options(command)


def run_mesh(args) -> int:
    from scene_builder.build import geometry_from_field, write_bundle
    from scene_builder.errors import BundleError

    if args.out.exists() and not args.overwrite:
        raise BundleError(f"{args.out}: already exists (pass --overwrite to replace it)")
    geometry = geometry_from_field(args.field, args.dataset, _mesh_config(args))
    dataset = args.dataset or geometry.stats.get("dataset")
    scene = write_bundle(
        geometry,
        args.out,
        field_dir=args.field,
        dataset_dir=dataset,
        name=args.out.name,
        tasks=args.tasks,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    from scene_builder.preview import scene_summary

    print(scene_summary(scene))
    return 0


def _register_build(subparsers) -> None:
    command = add_command(
        subparsers,
        "build-scene",
        run_build,
        help="Build a scene bundle from a video or image folder: capture -> poses -> align -> "
        "field -> mesh -> bundle. Each stage is cached in OUT.build/, so running the same "
        "command again resumes where it stopped.",
        examples="""
  driveenv build-scene ../shared/data/bird_capture/bird.mp4 --out runs/bird \\
      --scale camera-height=0.074 --field-minutes 10
  driveenv build-scene ../shared/data/bird_capture/images --out assets/scenes/bird \\
      --poses ../shared/data/bird_capture/sparse/0 --scale camera-height=0.074
  driveenv build-scene walk.mp4 --out runs/walk --up cameras --scale camera-height=1.6""",
    )
    command.add_argument("input", type=Path, help="video file or folder of images")
    command.add_argument("--out", type=Path, required=True, help="scene bundle directory to write")
    command.add_argument(
        "--work", type=Path, default=None, help="stage cache folder (default: OUT.build)"
    )
    command.add_argument(
        "--poses",
        default=None,
        help="import these reference poses (COLMAP model folder or LLFF poses_bounds.npy) "
        "instead of running structure from motion; INPUT is then their image folder",
    )
    command.add_argument("--max-frames", type=int, default=300, help="frames sampled from a video")
    command.add_argument(
        "--frame-downscale", type=float, default=1.0, help="divide frame width and height by this"
    )
    command.add_argument(
        "--up", default="ground", help="as 'driveenv align --up' (ground, cameras, auto)"
    )
    command.add_argument(
        "--scale",
        default=None,
        help="as 'driveenv align --scale': camera-height=H or distance=I,J,D (metres)",
    )
    command.add_argument("--field-steps", type=int, default=3000, help="field training steps")
    command.add_argument(
        "--field-minutes",
        type=float,
        default=None,
        help="train the field for about this many minutes instead of --field-steps",
    )
    command.add_argument(
        "--field-downscale", type=int, default=4, help="training image downscale factor"
    )
    command.add_argument(
        "--geometry",
        choices=("field", "points"),
        default="field",
        help="field: fuse depth rendered by the trained field (the accurate path); points: "
        "convex obstacles from the sparse SfM points on a ground plate, coloured from the "
        "images (for when the field could not be trained well enough to give depth)",
    )
    command.add_argument("--name", default=None, help="scene name (default: OUT's folder name)")
    _add_mesh_options(command)


def run_build(args) -> int:
    from scene_builder.build import BuildConfig, build_scene

    config = BuildConfig(
        poses_from=args.poses,
        max_frames=args.max_frames,
        frame_downscale=args.frame_downscale,
        up=args.up,
        scale=args.scale,
        field_steps=None if args.field_minutes else args.field_steps,
        field_minutes=args.field_minutes,
        field_downscale=args.field_downscale,
        geometry=args.geometry,
        mesh=_mesh_config(args),
        tasks=args.tasks,
        name=args.name,
        seed=args.seed,
    )
    build = build_scene(args.input, args.out, config, work=args.work, overwrite=args.overwrite)
    for result in build.results:
        state = "cached" if result.cached else f"{result.seconds:.1f} s"
        print(f"  {result.name:<7} {state}")
    from scene_builder.bundle import load_scene
    from scene_builder.preview import scene_summary

    print(scene_summary(load_scene(build.out)))
    return 0
