"""The nerfstudio backend: train nerfacto with ``ns-train`` and render a trained one through our API.

Optional (``pip install driveenv[nerfstudio]``), meant for users with a GPU: on this project's
2-core CPU the default nerfacto trains at about 7 s per 4,096-ray iteration (600 rays/s at load
1.5; 30 s at load 5), and ``REDUCED_NERFACTO_ARGS`` at about 0.3 s per 1,024-ray iteration (3,700
rays/s at load 1.3; 4 s at load 5), against the embedded backend's ~60,000 rays/s: why the
embedded backend is the default. Everything nerfstudio needs to run on a CPU-only machine lives in this
module and nowhere else (DESIGN.md lists the three measured obstacles):

1. torchvision 0.28.0 (the only release accepting torch 2.13.0) is a CUDA build whose compiled
   operators fail to load on CPU torch: its import needs the ``torchvision::nms``/``qnms``
   operator schemas defined first (``_define_torchvision_schemas``).
2. nerfacto's LPIPS metric downloads weights (no network here): the metric is replaced by a
   stub module for the eval images, which DriveEnv never uses (``_offline_lpips``).
3. the spawn-based data manager hangs unless training starts under a ``__main__`` guard: training
   runs in a child ``python -m scene_builder.fields.nerfstudio_backend`` whose ``__main__`` applies
   the shims and calls nerfstudio's ``ns-train`` entry point.
4. (found when running it) nerfstudio 1.1.5 resumes with ``torch.load``'s default, weights-only
   since torch 2.6, and its checkpoints hold numpy float64 learning rates: the child allows
   exactly those numpy types (``_numpy_checkpoint_globals``), and so does our import.

``import_nerfacto`` keeps only the config.yml and the last checkpoint (no training images): the
model is rebuilt from its config with the scene box and the number of appearance embeddings read
from the checkpoint itself, and its per-image appearance embeddings become our appearance codes
("capture" is their mean).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from common.atomic import atomic_path, write_json_atomic
from scene_builder.errors import FieldError
from scene_builder.fields.base import FIELD_FILE, FIELD_FORMAT_VERSION, RadianceField
from scene_builder.fields.nerfstudio_config import build_config, read_config

NERFSTUDIO_DIR = "nerfstudio"
# nerfstudio's data parser re-orients and rescales the poses; it records how in this file.
DATAPARSER_TRANSFORMS = "dataparser_transforms.json"
MODEL_PREFIX = "_model."
CHECKPOINT_DIR = "nerfstudio_models"
DEFAULT_STEPS = 30000  # nerfacto's own default


def nerfstudio_available() -> str | None:
    """None when nerfstudio can be imported here, else the reason it cannot."""
    try:
        _apply_cpu_shims()
        import nerfstudio  # noqa: F401
        from nerfstudio.models.nerfacto import NerfactoModelConfig  # noqa: F401
    except Exception as error:  # ImportError, or a CUDA-only dependency failing to load
        return f"nerfstudio is not usable here ({type(error).__name__}: {str(error)[:120]}); install driveenv[nerfstudio]"
    return None


def _require_nerfstudio() -> None:
    reason = nerfstudio_available()
    if reason is not None:
        raise FieldError(reason)


# ------------------------------------------------------------------------- CPU shims
def _define_torchvision_schemas() -> None:
    """Let a CUDA torchvision import on CPU torch: define the operator schemas it registers.

    Only when torchvision's compiled operators fail to load: defining the ``torchvision``
    namespace from Python would stop a working torchvision from registering its own.
    """
    spec = importlib.util.find_spec("torchvision")
    if "torchvision" in sys.modules or spec is None or spec.origin is None:
        return
    try:
        torch.ops.load_library(next(Path(spec.origin).parent.glob("_C*.so")))
        return  # the operators load: nothing to do
    except (OSError, StopIteration):
        pass
    try:
        library = torch.library.Library("torchvision", "DEF")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _define_torchvision_schemas.library = library  # keep the registration alive
    except RuntimeError:
        pass  # already defined by an earlier call


def _offline_lpips() -> None:
    """Replace torchmetrics' LPIPS (which downloads weights) by a module returning zero."""
    try:
        import torchmetrics.image.lpip as lpip
    except ImportError:
        return

    class NoLPIPS(torch.nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()

        def forward(self, *args, **kwargs):
            return torch.zeros(())

    lpip.LearnedPerceptualImagePatchSimilarity = NoLPIPS


def _numpy_checkpoint_globals() -> list:
    """What a nerfstudio checkpoint pickles besides tensors: numpy float64 learning rates."""
    import numpy as np

    return [np._core.multiarray.scalar, np.dtype, type(np.dtype("float64"))]


def _apply_cpu_shims() -> None:
    if importlib.util.find_spec("nerfstudio") is None:
        return  # nothing to adapt: leave torch and torchmetrics as they are
    _define_torchvision_schemas()
    _offline_lpips()


# ---------------------------------------------------------------------------- train
# A nerfacto small enough to train on a CPU (1,024 rays, a 2^15 hash table, 64+32 proposal and
# 16 field samples per ray instead of 4,096 rays, 2^19, 256+96 and 48): for tests and trials;
# the default nerfacto is for a GPU. Measured on the bird at 136x240, see the module docstring.
REDUCED_NERFACTO_ARGS = (
    "--pipeline.datamanager.train-num-rays-per-batch",
    "1024",
    "--pipeline.model.log2-hashmap-size",
    "15",
    "--pipeline.model.num-proposal-samples-per-ray",
    "64",
    "32",
    "--pipeline.model.num-nerf-samples-per-ray",
    "16",
)


def train_nerfacto(
    dataset_dir: Path,
    out_dir: Path,
    max_minutes: float | None = None,
    steps: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    holdout_every: int = 8,
    nerfacto_args: Sequence[str] = (),
) -> Path:
    """Run ``ns-train nerfacto`` on a DriveEnv dataset in a child process, then import the result.

    nerfstudio's own files (checkpoints every 100 steps, tensorboard logs) go to ``OUT.ns-train``
    beside OUT; ``resume`` continues from its last checkpoint up to ``steps`` in all. Every
    ``holdout_every``-th frame is held out, as in the embedded backend. ``nerfacto_args`` are
    extra ``ns-train nerfacto`` options (e.g. ``REDUCED_NERFACTO_ARGS``).
    """
    _require_nerfstudio()
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    if not (dataset_dir / "transforms.json").is_file():
        raise FieldError(f"{dataset_dir / 'transforms.json'}: no such file")
    if (out_dir / FIELD_FILE).exists() and not (overwrite or resume):
        raise FieldError(f"{out_dir}: already holds a field (use --overwrite)")
    work = out_dir.with_name(out_dir.name + ".ns-train")
    checkpoints = sorted(work.glob(f"**/{CHECKPOINT_DIR}/step-*.ckpt"))
    if resume and not checkpoints:
        raise FieldError(f"{work}: no nerfstudio checkpoint to resume from")
    if checkpoints and not resume:
        if not overwrite:
            raise FieldError(
                f"{work}: holds an earlier nerfstudio run (use --resume or --overwrite)"
            )
        shutil.rmtree(work)
    iterations, resume_args = steps or DEFAULT_STEPS, []
    if resume:
        # nerfstudio counts --max-num-iterations from the step it resumes at.
        latest = max(checkpoints, key=_checkpoint_step)
        iterations -= _checkpoint_step(latest) + 1
        resume_args = ["--load-dir", str(latest.parent)]
    command = [
        sys.executable,
        "-m",
        "scene_builder.fields.nerfstudio_backend",
        "nerfacto",
        "--data",
        str(dataset_dir),
        "--output-dir",
        str(work),
        "--max-num-iterations",
        str(iterations),
        "--vis",
        "tensorboard",
        "--viewer.quit-on-train-completion",
        "True",
        "--timestamp",
        "run",
        "--steps-per-save",
        "100",
        *(["--machine.device-type", "cpu"] if not torch.cuda.is_available() else []),
        *resume_args,
        *nerfacto_args,
        # The data parser comes last (a subcommand).
        "nerfstudio-data",
        "--eval-mode",
        "interval",
        "--eval-interval",
        str(holdout_every),
    ]
    if iterations > 0:  # else a resumed run is already complete: only import it
        _run_in_own_group(command, None if max_minutes is None else 60 * max_minutes, dataset_dir)
    configs = sorted(work.glob("**/config.yml"))
    if not configs:
        raise FieldError(f"{work}: ns-train wrote no config.yml")
    return import_nerfacto(configs[-1], out_dir, overwrite=overwrite or resume)


def _run_in_own_group(command: list[str], timeout: float | None, dataset_dir: Path) -> None:
    """Run ns-train; at the time limit stop it and its data-loader workers (one process group).

    Reaching the limit is not an error: nerfstudio saved checkpoints along the way.
    """
    process = subprocess.Popen(command, start_new_session=True)
    try:
        returncode = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C: the saved checkpoints stay
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    if returncode != 0:
        raise FieldError(f"ns-train nerfacto failed on {dataset_dir} (exit code {returncode})")


# --------------------------------------------------------------------------- import
def _checkpoint_step(path: Path) -> int:
    return int(path.stem.split("-")[-1])


def _latest_checkpoint(config_path: Path, config) -> Path:
    candidates = []
    model_dir = getattr(config, "relative_model_dir", Path(CHECKPOINT_DIR))
    for folder in (config_path.parent / model_dir, config_path.parent / CHECKPOINT_DIR):
        candidates += sorted(folder.glob("step-*.ckpt"))
    if not candidates:
        raise FieldError(f"{config_path}: no step-*.ckpt checkpoint beside it")
    return max(candidates, key=_checkpoint_step)


def _read_config(config_path: Path):
    """nerfstudio's config objects, read without running code (``nerfstudio_config``).

    The file is checked before nerfstudio is needed, so a config naming anything but
    nerfstudio's own classes is refused even where nerfstudio is not installed."""
    data = read_config(config_path)
    _require_nerfstudio()
    return build_config(data, config_path)


def import_nerfacto(config_path: Path, out_dir: Path, overwrite: bool = False) -> Path:
    """Copy a trained nerfacto's config.yml and last checkpoint into a DriveEnv field folder."""
    _require_nerfstudio()
    config_path = Path(config_path)
    out_dir = Path(out_dir)
    if (out_dir / FIELD_FILE).exists() and not overwrite:
        raise FieldError(f"{out_dir}: already holds a field (use --overwrite)")
    config = _read_config(config_path)
    checkpoint = _latest_checkpoint(config_path, config)
    transform_path = config_path.parent / DATAPARSER_TRANSFORMS
    with atomic_path(out_dir) as tmp:
        (tmp / NERFSTUDIO_DIR).mkdir(parents=True)
        shutil.copy2(config_path, tmp / NERFSTUDIO_DIR / "config.yml")
        shutil.copy2(checkpoint, tmp / NERFSTUDIO_DIR / checkpoint.name)
        if transform_path.is_file():
            shutil.copy2(transform_path, tmp / NERFSTUDIO_DIR / DATAPARSER_TRANSFORMS)
        meta = {
            "format_version": FIELD_FORMAT_VERSION,
            "backend": "nerfstudio",
            "config": f"{NERFSTUDIO_DIR}/config.yml",
            "checkpoint": f"{NERFSTUDIO_DIR}/{checkpoint.name}",
            "dataset": str(getattr(config.pipeline.datamanager, "data", "") or ""),
            "source_config": str(config_path.resolve()),
        }
        write_json_atomic(tmp / FIELD_FILE, meta)
    NerfstudioRadianceField.load(out_dir, meta)  # refuse to leave an unloadable import
    return out_dir


# --------------------------------------------------------------------------- render
class NerfstudioRadianceField(RadianceField):
    """A trained nerfacto behind the render API; appearance codes are its image embeddings."""

    backend_name = "nerfstudio"
    chunk_rays = 4096

    def __init__(self, root: Path, meta: dict[str, Any], model, embeddings: torch.Tensor):
        super().__init__(root, meta)
        self.model = model.eval()
        self.embeddings = embeddings
        # World -> nerfstudio's frame: p' = scale * (R p + t).
        self.rotation, self.translation, self.scale = torch.eye(3), torch.zeros(3), 1.0
        transforms = Path(root) / NERFSTUDIO_DIR / DATAPARSER_TRANSFORMS
        if transforms.is_file():
            data = json.loads(transforms.read_text())
            matrix = torch.tensor(data["transform"], dtype=torch.float32)
            self.rotation, self.translation = matrix[:3, :3], matrix[:3, 3]
            self.scale = float(data["scale"])
        self.lighting_presets = {"capture": embeddings.mean(dim=0)}

    @property
    def appearance_dim(self) -> int:
        return self.embeddings.shape[1]

    @classmethod
    def load(cls, root: Path, meta: dict[str, Any]) -> NerfstudioRadianceField:
        root = Path(root)
        config = _read_config(root / meta["config"])
        from nerfstudio.data.scene_box import SceneBox

        checkpoint = root / meta["checkpoint"]
        try:
            with torch.serialization.safe_globals(_numpy_checkpoint_globals()):
                state = torch.load(checkpoint, map_location="cpu", weights_only=True)["pipeline"]
        except Exception as error:
            raise FieldError(
                f"{checkpoint}: corrupt nerfstudio checkpoint ({type(error).__name__})"
            ) from None
        state = {
            k.removeprefix("module.").removeprefix(MODEL_PREFIX): v
            for k, v in state.items()
            if MODEL_PREFIX in k
        }
        embedding_key = next((k for k in state if k.startswith("field.embedding_appearance")), None)
        if embedding_key is None or "field.aabb" not in state:
            raise FieldError(
                f"{checkpoint}: not a nerfacto checkpoint (no appearance embedding or scene box)"
            )
        embeddings = state[embedding_key].float()
        model = config.pipeline.model.setup(
            scene_box=SceneBox(aabb=state["field.aabb"].float()),
            num_train_data=embeddings.shape[0],
            metadata={},
        )
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as error:
            raise FieldError(
                f"{checkpoint}: does not match {root / meta['config']} ({str(error)[:120]})"
            ) from None
        return cls(root, meta, model.to("cpu"), embeddings)

    def _render_rays(self, origins, directions, codes, surface_t):
        from nerfstudio.cameras.rays import RayBundle

        field = self.model.field
        origins = self.scale * (origins @ self.rotation.T + self.translation)
        directions = self.scale * (directions @ self.rotation.T)
        # t is unchanged by the similarity, so distance / |direction| is still our z-depth.
        norm = directions.norm(dim=-1, keepdim=True)
        unit = directions / norm
        table = torch.nn.Embedding.from_pretrained(codes)  # one "camera" per ray
        original = field.embedding_appearance
        bundle = RayBundle(
            origins=origins,
            directions=unit,
            pixel_area=(1.0 / norm) ** 2 * 1e-6,
            camera_indices=torch.arange(origins.shape[0])[:, None],
            metadata={"directions_norm": norm},
        )
        if surface_t is not None:
            # Where the mesh gives a surface, nerfacto samples only in a band around it.
            # Elsewhere near/far are nerfacto's inference values (0 and its far plane).
            hit = (torch.isfinite(surface_t) & (surface_t > 0))[:, None]
            distance = torch.where(hit, surface_t[:, None], 0.0) * norm
            far = torch.full_like(distance, self.model.config.far_plane)
            bundle.nears = torch.where(hit, 0.95 * distance, 0.0)
            bundle.fars = torch.where(hit, 1.05 * distance, far)
        try:
            # The field looks its embedding up by camera index only in training mode; swapping
            # in a table with one code per ray makes it use our codes, without training anything
            # else (the flag is the field's own, not its children's).
            field.embedding_appearance = table
            field.training = True
            outputs = self.model(bundle)  # its collider sets near/far where the mesh did not
        finally:
            field.embedding_appearance = original
            field.training = False
        depth = outputs.get("expected_depth", outputs["depth"]).reshape(-1) / norm.reshape(-1)
        return outputs["rgb"].reshape(-1, 3), depth, outputs["accumulation"].reshape(-1)


def _main() -> None:
    """``python -m scene_builder.fields.nerfstudio_backend ARGS``: ns-train with the CPU shims."""
    _apply_cpu_shims()
    # nerfstudio 1.1.5 resumes with torch.load's default, weights-only since torch 2.6.
    torch.serialization.add_safe_globals(_numpy_checkpoint_globals())
    from nerfstudio.scripts.train import entrypoint

    sys.argv = ["ns-train", *sys.argv[1:]]
    entrypoint()


if __name__ == "__main__":
    _main()
