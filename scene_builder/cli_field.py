"""Sub-commands of ``driveenv`` from scene_builder: train-field, import-field."""

from __future__ import annotations

from dataclasses import dataclass

from common.commands import add_command
from common.config_cli import add_config, make_config, option

BACKENDS = ("embedded", "nerfstudio")


@dataclass
class TrainFieldCommand:
    """Input, output and backend of ``driveenv train-field`` (the training options are
    ``scene_builder.train.TrainConfig``'s)."""

    dataset: str = option(help="posed dataset folder (with transforms.json)")
    out: str = option(help="field folder to write (field.json, field.pt)")
    backend: str = option(
        "embedded", "embedded (CPU) or nerfstudio's nerfacto (GPU)", choices=BACKENDS
    )
    field_resolution: int | None = option(
        None, "final grid cells per axis of the embedded field (default: EmbeddedConfig's)"
    )
    resume: bool = option(False, "continue from OUT/train_state.pt")
    overwrite: bool = option(False, "replace an existing field in OUT")


@dataclass
class ImportFieldCommand:
    """Options of ``driveenv import-field``."""

    config: str = option(help="nerfstudio config.yml of a trained nerfacto")
    out: str = option(help="field folder to write")
    overwrite: bool = option(False, "replace an existing field in OUT")


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
    add_command(
        subparsers,
        "train-field",
        train_field_command,
        help="Train a radiance field on a posed dataset (transforms.json).",
        examples="""
  driveenv train-field runs/bird/dataset --out runs/bird/field --field-downscale 4 --field-minutes 10
  driveenv train-field runs/bird/dataset --out runs/bird/field --field-steps 3000 --lighting-augmentation
  driveenv train-field runs/bird/dataset --out runs/bird/field --resume      # after Ctrl-C
  driveenv train-field runs/street/dataset --out runs/street/field --backend nerfstudio  # GPU
""",
        options=_train_field_options,
    )
    add_command(
        subparsers,
        "import-field",
        import_field_command,
        help="Import a trained nerfstudio nerfacto (config.yml + checkpoint) behind DriveEnv's render API.",
        examples="""
  driveenv import-field outputs/bird/nerfacto/2024-01-01_000000/config.yml --out runs/bird/field
""",
        options=lambda parser: add_config(parser, ImportFieldCommand, positional=("config",)),
    )


def _train_field_options(parser) -> None:
    from scene_builder.train import TrainConfig

    add_config(parser, TrainFieldCommand, positional=("dataset",))
    add_config(parser, TrainConfig, exclude=("field",), title="training options")


def _train_config(args):
    """The embedded backend's training config; a time budget replaces the step count."""
    from scene_builder.fields.embedded import EmbeddedConfig
    from scene_builder.train import TrainConfig

    resolution = args.field_resolution
    grid = EmbeddedConfig() if resolution is None else EmbeddedConfig(resolution=resolution)
    steps = None if args.max_minutes else args.steps
    return make_config(TrainConfig, args, steps=steps, field=grid)


def train_field_command(args) -> int:
    from pathlib import Path

    command = make_config(TrainFieldCommand, args)
    config = _train_config(args)
    if command.backend == "nerfstudio":
        from scene_builder.fields.nerfstudio_backend import train_nerfacto
        from scene_builder.train import TrainConfig

        # nerfacto keeps its own step count unless --field-steps changes the embedded default.
        steps = None if config.steps == TrainConfig.steps else config.steps

        try:
            train_nerfacto(
                Path(command.dataset),
                Path(command.out),
                max_minutes=config.max_minutes,
                steps=steps,
                overwrite=command.overwrite,
                resume=command.resume,
                holdout_every=config.holdout_every,
            )
        except KeyboardInterrupt:  # nerfstudio keeps its own checkpoints in OUT
            raise KeyboardInterrupt(_resume_hint(command, saved=True)) from None
        return 0

    from common.cleanup import removed_on_failure
    from scene_builder.train import STATE_FILE

    def resumable(out):  # a saved training state: --resume continues from it
        return (out / STATE_FILE).is_file()

    try:
        with removed_on_failure(command.out, resumable):
            trainer = _train_embedded(command, config)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_resume_hint(command, resumable(Path(command.out)))) from None
    done = (
        "complete" if trainer.step >= trainer.planned_steps else "stopped (run again with --resume)"
    )
    print(f"{command.out}: step {trainer.step}/{trainer.planned_steps}, {done}")
    return 0


def _resume_hint(command: TrainFieldCommand, saved: bool) -> str:
    """What to run after Ctrl-C: --resume once a training state is saved, else start again."""
    import shlex

    if not saved:
        return "no training state was saved yet; run the same command again to start over"
    words = ["driveenv", "train-field", command.dataset, "--out", command.out]
    if command.backend != "embedded":
        words += ["--backend", command.backend]
    return f"resume with: {shlex.join([*words, '--resume'])}"


def _train_embedded(command: TrainFieldCommand, config):
    from common.progress import progress_bar
    from scene_builder.train import train_field

    with progress_bar() as progress:
        task = progress.add_task("train-field", total=None, status="loading frames")

        def on_status(trainer, rays_per_second, holdout_psnr):
            progress.update(
                task,
                completed=trainer.step,
                total=trainer.planned_steps,
                status=f"{rays_per_second:,.0f} rays/s  held-out PSNR {holdout_psnr:.2f} dB",
            )

        trainer = train_field(
            command.dataset,
            command.out,
            config,
            resume=command.resume,
            overwrite=command.overwrite,
            on_status=on_status,
        )
        progress.update(task, completed=trainer.step, status="done")
    return trainer


def import_field_command(args) -> int:
    from pathlib import Path

    from scene_builder.fields.nerfstudio_backend import import_nerfacto

    command = make_config(ImportFieldCommand, args)
    import_nerfacto(Path(command.config), Path(command.out), overwrite=command.overwrite)
    print(f"{command.out}: imported {command.config}")
    return 0
