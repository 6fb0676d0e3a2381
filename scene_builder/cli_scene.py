"""Sub-commands of ``driveenv`` from scene_builder: mesh, build-scene, scene-info, synthetic-scene."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.commands import add_command
from common.config_cli import add_config, make_config, option

MESH_GROUP = "geometry options (scene_builder.mesh.MeshConfig)"


@dataclass
class SceneInfoCommand:
    """Options of ``driveenv scene-info``."""

    scene: str = option(help="scene bundle directory")
    preview: str | None = option(
        None,
        "preview PNG to write or replace, outside the bundle "
        "(default: NAME_preview.png in the current folder)",
    )
    no_preview: bool = option(False, "only print the summary")
    preview_size: int = option(128, "side of each camera view of the preview, pixels")
    preview_renderer: str = option(
        "auto",
        "camera views from the radiance field or the baked mesh (auto: field if present)",
        choices=("auto", "field", "mesh"),
    )


@dataclass
class SyntheticCommand:
    """Options of ``driveenv synthetic-scene``."""

    out: str = option(help="scene bundle directory")
    seed: int = option(0, "seed of the boxes, texture and tasks")
    overwrite: bool = option(False, "replace an existing bundle")

    def __post_init__(self) -> None:
        if self.seed < 0:  # numpy's generator refuses it with a ValueError traceback
            from scene_builder.errors import BundleError

            raise BundleError(f"--seed {self.seed}: must be 0 or more")


@dataclass
class MeshCommand:
    """Input and output of ``driveenv mesh`` (the geometry options are MeshConfig's)."""

    field: str = option(help="field directory from 'driveenv train-field'")
    out: str = option(help="scene bundle directory to write")
    dataset: str | None = option(
        None, "posed dataset (world frame) whose cameras are rendered (default: the field's own)"
    )
    overwrite: bool = option(False, "replace an existing bundle")


@dataclass
class BuildCommand:
    """Input and output of ``driveenv build-scene`` (the stages' options are BuildConfig's)."""

    input: str = option(help="video file or folder of images")
    out: str = option(help="scene bundle directory to write")
    work: str | None = option(None, "stage cache folder (default: OUT.build)")
    overwrite: bool = option(False, "replace an existing bundle")


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
    _register_mesh(subparsers)
    _register_build(subparsers)
    add_command(
        subparsers,
        "scene-info",
        scene_info,
        help="Validate a scene bundle, print a summary and render a preview image "
        "(top-down map with spawns and goals, one camera view per lighting preset).",
        examples="""
  driveenv scene-info assets/scenes/bird
  driveenv scene-info assets/scenes/bird --preview bird_preview.png --preview-size 160
  driveenv scene-info my_scene --no-preview""",
        options=lambda parser: add_config(parser, SceneInfoCommand, positional=("scene",)),
    )
    add_command(
        subparsers,
        "synthetic-scene",
        synthetic_scene,
        help="Write the synthetic table-top test scene (textured plate with cliff edges and "
        "boxes, no field): the scene the agent benchmarks and tests train in.",
        examples="  driveenv synthetic-scene --out runs/synthetic\n"
        "  driveenv synthetic-scene --out runs/synthetic-7 --seed 7",
        options=lambda parser: add_config(parser, SyntheticCommand),
    )


def synthetic_scene(args) -> int:
    from scene_builder.synthetic import make_synthetic_scene

    command = make_config(SyntheticCommand, args)
    path = make_synthetic_scene(Path(command.out), seed=command.seed, overwrite=command.overwrite)
    print(f"synthetic scene: {path}")
    return 0


def scene_info(args) -> int:
    from scene_builder.bundle import load_scene
    from scene_builder.preview import scene_summary

    command = make_config(SceneInfoCommand, args)
    scene = load_scene(Path(command.scene))
    print(scene_summary(scene))
    if command.no_preview:
        return 0
    from scene_builder.errors import BundleError
    from scene_builder.preview import write_preview

    # An inspection command: re-runnable (it replaces its own preview) and read-only on the
    # bundle, whose files are hashed.
    preview = command.preview
    target = Path(preview) if preview else Path(f"{scene.root.name}_preview.png")
    if target.resolve().is_relative_to(scene.root.resolve()):
        raise BundleError(f"--preview {target}: inside the bundle {scene.root}; write it elsewhere")
    if target.is_dir():
        raise BundleError(f"--preview {target}: is a folder; give a .png file name")
    size, renderer = command.preview_size, command.preview_renderer
    write_preview(scene, target, image_size=size, renderer=renderer)
    print(f"preview: {target}")
    return 0


def _mesh_options(parser) -> None:
    from scene_builder.build import BuildConfig
    from scene_builder.mesh import MeshConfig

    add_config(parser, MeshCommand, positional=("field",))
    add_config(parser, BuildConfig, include=("tasks", "seed"))
    add_config(parser, MeshConfig, exclude=("virtual_rings",), title=MESH_GROUP)


def _register_mesh(subparsers) -> None:
    add_command(
        subparsers,
        "mesh",
        run_mesh,
        help="Turn a trained field into a scene bundle: collision mesh (TSDF of rendered depth), "
        "visual mesh with baked colours, drivable map, spawns, goals and routes.",
        examples="""
  driveenv mesh runs/bird_field --out runs/bird_scene
  driveenv mesh runs/bird_field --out runs/bird_scene --target-faces 60000 --tsdf-resolution 320
  driveenv mesh runs/field --dataset runs/aligned --out runs/scene --region-radius 0.6""",
        options=_mesh_options,
    )


def run_mesh(args) -> int:
    from scene_builder.build import BuildConfig, geometry_from_field, write_bundle
    from scene_builder.errors import BundleError
    from scene_builder.mesh import MeshConfig

    command = make_config(MeshCommand, args)
    config = make_config(MeshConfig, args)
    tasks = make_config(BuildConfig, args, mesh=config)
    out = Path(command.out)
    if out.exists() and not command.overwrite:
        raise BundleError(f"{out}: already exists (pass --overwrite to replace it)")
    dataset = Path(command.dataset) if command.dataset else None
    geometry = geometry_from_field(Path(command.field), dataset, config)
    scene = write_bundle(
        geometry,
        out,
        field_dir=Path(command.field),
        dataset_dir=dataset or geometry.stats.get("dataset"),
        name=out.name,
        tasks=tasks.tasks,
        seed=tasks.seed,
        overwrite=command.overwrite,
    )
    from scene_builder.preview import scene_summary

    print(scene_summary(scene))
    return 0


def _build_options(parser) -> None:
    from scene_builder.build import BuildConfig
    from scene_builder.mesh import MeshConfig

    add_config(parser, BuildCommand, positional=("input",))
    add_config(parser, BuildConfig, exclude=("mesh",), title="stage options (BuildConfig)")
    add_config(parser, MeshConfig, exclude=("virtual_rings",), title=MESH_GROUP)


def _register_build(subparsers) -> None:
    add_command(
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
        options=_build_options,
    )


def build_config(args):
    """The ``BuildConfig`` of parsed ``driveenv build-scene`` arguments; a time budget for the
    field replaces its step count."""
    from scene_builder.build import BuildConfig
    from scene_builder.mesh import MeshConfig

    steps = None if args.field_minutes else args.field_steps
    return make_config(BuildConfig, args, field_steps=steps, mesh=make_config(MeshConfig, args))


def run_build(args) -> int:
    from scene_builder.build import build_scene

    command = make_config(BuildCommand, args)
    config = build_config(args)
    work = Path(command.work) if command.work else None
    build = build_scene(
        Path(command.input), Path(command.out), config, work=work, overwrite=command.overwrite
    )
    for result in build.results:
        state = "cached" if result.cached else f"{result.seconds:.1f} s"
        print(f"  {result.name:<7} {state}")
    from scene_builder.bundle import load_scene
    from scene_builder.preview import scene_summary

    print(scene_summary(load_scene(build.out)))
    return 0
