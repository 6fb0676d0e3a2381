"""Sub-commands of ``driveenv`` from scene_builder: mesh, build-scene, scene-info."""

from __future__ import annotations

from pathlib import Path

from driveenv.cli import add_command


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
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
