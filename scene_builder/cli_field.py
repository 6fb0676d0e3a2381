"""Sub-commands of ``driveenv`` from scene_builder: train-field, import-field."""

from __future__ import annotations

from common.commands import add_command


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
    train = add_command(
        subparsers,
        "train-field",
        train_field_command,
        help="Train a radiance field on a posed dataset (transforms.json).",
        examples="""
  driveenv train-field runs/bird/dataset --out runs/bird/field --downscale 4 --max-minutes 10
  driveenv train-field runs/bird/dataset --out runs/bird/field --steps 3000 --lighting-augmentation
  driveenv train-field runs/bird/dataset --out runs/bird/field --resume      # after Ctrl-C
  driveenv train-field runs/street/dataset --out runs/street/field --backend nerfstudio  # GPU
""",
    )
    train.add_argument("dataset", help="posed dataset folder (with transforms.json)")
    train.add_argument("--out", required=True, help="field folder to write (field.json, field.pt)")
    train.add_argument("--backend", choices=("embedded", "nerfstudio"), default="embedded")
    train.add_argument("--downscale", type=int, default=4, help="train on images / K")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None, help="training steps (default 3000)")
    length.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="train for about this long instead of --steps",
    )
    train.add_argument("--batch-rays", type=int, default=8192, help="rays per step")
    train.add_argument("--resolution", type=int, default=192, help="final grid cells per axis")
    train.add_argument(
        "--scene",
        choices=("auto", "bounded", "unbounded"),
        default="auto",
        help="bounded box, or contraction of everything beyond the cameras' region",
    )
    train.add_argument(
        "--lighting-augmentation",
        action="store_true",
        help="also train every image under a random exposure/white-balance/gamma change",
    )
    train.add_argument("--holdout-every", type=int, default=8, help="hold out every K-th frame")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt")
    train.add_argument("--overwrite", action="store_true", help="replace an existing field in OUT")

    imported = add_command(
        subparsers,
        "import-field",
        import_field_command,
        help="Import a trained nerfstudio nerfacto (config.yml + checkpoint) behind DriveEnv's render API.",
        examples="""
  driveenv import-field outputs/bird/nerfacto/2024-01-01_000000/config.yml --out runs/bird/field
""",
    )
    imported.add_argument("config", help="nerfstudio config.yml of a trained nerfacto")
    imported.add_argument("--out", required=True, help="field folder to write")
    imported.add_argument(
        "--overwrite", action="store_true", help="replace an existing field in OUT"
    )


def train_field_command(args) -> int:
    from pathlib import Path

    if args.backend == "nerfstudio":
        from scene_builder.fields.nerfstudio_backend import train_nerfacto

        train_nerfacto(
            Path(args.dataset),
            Path(args.out),
            max_minutes=args.max_minutes,
            steps=args.steps,
            overwrite=args.overwrite,
            resume=args.resume,
            holdout_every=args.holdout_every,
        )
        return 0

    from common.progress import progress_bar
    from scene_builder.fields.embedded import EmbeddedConfig
    from scene_builder.train import TrainConfig, train_field

    config = TrainConfig(
        downscale=args.downscale,
        steps=args.steps if args.steps is not None else (None if args.max_minutes else 3000),
        max_minutes=args.max_minutes,
        batch_rays=args.batch_rays,
        lighting_augmentation=args.lighting_augmentation,
        scene_mode=args.scene,
        holdout_every=args.holdout_every,
        seed=args.seed,
        field=EmbeddedConfig(resolution=args.resolution),
    )
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
            args.dataset,
            args.out,
            config,
            resume=args.resume,
            overwrite=args.overwrite,
            on_status=on_status,
        )
        progress.update(task, completed=trainer.step, status="done")
    done = (
        "complete" if trainer.step >= trainer.planned_steps else "stopped (run again with --resume)"
    )
    print(f"{args.out}: step {trainer.step}/{trainer.planned_steps}, {done}")
    return 0


def import_field_command(args) -> int:
    from pathlib import Path

    from scene_builder.fields.nerfstudio_backend import import_nerfacto

    import_nerfacto(Path(args.config), Path(args.out), overwrite=args.overwrite)
    print(f"{args.out}: imported {args.config}")
    return 0
