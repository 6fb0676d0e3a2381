"""The nerfstudio backend, for real: train nerfacto a few iterations on CPU, import, render.

Runs only where the optional extra is installed (``pip install driveenv[nerfstudio]``); it is not
in the shared environment because nerfstudio pins numpy<2. Most of its time is nerfstudio
starting up twice.
"""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch

from scene_builder.datasets import PosedDataset, save_dataset
from scene_builder.errors import FieldError
from scene_builder.fields import load_field
from scene_builder.fields.nerfstudio_backend import (
    REDUCED_NERFACTO_ARGS,
    import_nerfacto,
    nerfstudio_available,
    train_nerfacto,
)
from scene_builder.importers import read_llff

UNAVAILABLE = nerfstudio_available()
STEPS = 5


def test_missing_extra_is_a_clear_error(tmp_path):
    if UNAVAILABLE is None:
        pytest.skip("nerfstudio is installed: the missing-extra message cannot be observed")
    with pytest.raises(FieldError, match="install driveenv\\[nerfstudio\\]"):
        import_nerfacto(tmp_path / "config.yml", tmp_path / "field")


@pytest.fixture(scope="module")
def trained(shared_data, tmp_path_factory):
    """A nerfacto trained STEPS iterations on every 8th bird frame at 34x60, imported."""
    root = tmp_path_factory.mktemp("nerfacto")
    images = root / "dataset" / "images"
    images.mkdir(parents=True)
    for path in sorted((shared_data / "bird_capture" / "images").glob("*.jpg")):
        small = cv2.resize(cv2.imread(str(path)), (34, 60), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(images / path.name), small)
    frames, _ = read_llff(shared_data / "bird_capture" / "poses_bounds.npy", images)
    frames = frames[::8]
    save_dataset(PosedDataset(root / "dataset", frames))
    train_nerfacto(
        root / "dataset", root / "field", steps=STEPS, nerfacto_args=REDUCED_NERFACTO_ARGS
    )
    return root, frames


@pytest.mark.skipif(UNAVAILABLE is not None, reason=f"optional extra absent: {UNAVAILABLE}")
def test_nerfacto_trains_imports_and_renders_as_nerfstudio_does(trained):
    from nerfstudio.cameras.cameras import Cameras

    root, frames = trained
    field = load_field(root / "field")
    assert field.backend_name == "nerfstudio"
    assert (root / "field" / "nerfstudio" / f"step-{STEPS - 1:09d}.ckpt").is_file()
    # Every 8th frame is held out, as in the embedded backend: one embedding per training frame.
    assert field.embeddings.shape == (len(frames) - len(frames[::8]), field.appearance_dim)
    assert torch.allclose(field.lighting_presets["capture"], field.embeddings.mean(dim=0))

    camera = frames[1].camera
    intrinsics = [camera.fx, camera.fy, camera.cx, camera.cy]
    ours = field.render(frames[1].camera_to_world, intrinsics, camera.width, camera.height)
    assert ours.rgb.shape == (1, camera.height, camera.width, 3) and ours.rgb.dtype == torch.float32
    assert np.isfinite(ours.depth.numpy()).all() and (ours.depth > 0).all()

    # The same view rendered by nerfstudio itself, in its own frame (its data parser rotates,
    # shifts and scales the poses), with its own inference appearance (the mean embedding).
    # After a few iterations the field is nearly uniform; random weights give it detail, so that
    # a wrong pose transform, pixel offset or depth convention changes the image a lot.
    _scramble(field.model)
    ours = field.render(frames[1].camera_to_world, intrinsics, camera.width, camera.height)
    pose = torch.as_tensor(np.asarray(frames[1].camera_to_world), dtype=torch.float32)
    ns_pose = torch.cat(
        [
            field.rotation @ pose[:3, :3],
            field.scale * (field.rotation @ pose[:3, 3:] + field.translation[:, None]),
        ],
        dim=1,
    )
    ns_camera = Cameras(ns_pose[None], *intrinsics, width=camera.width, height=camera.height)
    theirs = field.model.get_outputs_for_camera(ns_camera)
    assert ours.rgb.std() > 0.1  # detailed enough for the comparison to mean something
    # A random field is chaotic, so rounding differences between the two ray computations change
    # a few pixels visibly (by up to ~0.03; median 2e-5): compare means and medians. A wrong
    # convention (pose transform, pixel centre, depth kind) changes nearly every pixel by ~0.1-1.
    rgb_error = (ours.rgb[0] - theirs["rgb"].clamp(0, 1)).abs()
    assert rgb_error.mean() < 1e-3 and rgb_error.median() < 1e-4
    assert (ours.accumulation[0] - theirs["accumulation"][..., 0]).abs().mean() < 1e-3
    # Our depth is z-depth in world units; nerfstudio's is distance along the unit ray, scaled.
    z_depth = theirs["expected_depth"][..., 0] * _z_over_distance(camera) / field.scale
    depth_error = (ours.depth[0] / z_depth - 1).abs()
    assert depth_error.mean() < 5e-3 and depth_error.median() < 5e-4


@pytest.mark.skipif(UNAVAILABLE is not None, reason=f"optional extra absent: {UNAVAILABLE}")
def test_appearance_codes_change_colour_not_geometry(trained):
    root, frames = trained
    field = load_field(root / "field")
    camera = frames[1].camera
    intrinsics = [camera.fx, camera.fy, camera.cx, camera.cy]
    poses = np.stack([frames[1].camera_to_world] * 2)
    codes = torch.stack([field.embeddings[0], field.embeddings[0] + 3.0])
    out = field.render(poses, intrinsics, camera.width, camera.height, appearance=codes)
    assert (out.rgb[0] - out.rgb[1]).abs().mean() > 1e-3
    assert torch.equal(out.depth[0], out.depth[1])
    with pytest.raises(FieldError, match="unknown lighting preset"):
        field.render(poses, intrinsics, camera.width, camera.height, appearance="sunset")


def _scramble(model) -> None:
    """Random hash tables and layer weights (seeded) for nerfacto's field and proposal networks."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(("field.", "proposal_networks.")) and "embedding" not in name:
                scale = 1.0 if "hash" in name else 2.0 / parameter.shape[-1] ** 0.5
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)


def _z_over_distance(camera) -> torch.Tensor:
    """cos of each pixel ray's angle to the optical axis: z-depth = distance * this."""
    v, u = torch.meshgrid(
        torch.arange(camera.height) + 0.5, torch.arange(camera.width) + 0.5, indexing="ij"
    )
    x, y = (u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy
    return 1.0 / torch.sqrt(x**2 + y**2 + 1.0)


@pytest.mark.skipif(UNAVAILABLE is not None, reason=f"optional extra absent: {UNAVAILABLE}")
def test_surface_depth_keeps_samples_in_a_band_around_it(trained):
    root, frames = trained
    field = load_field(root / "field")
    _scramble(field.model)
    camera = frames[1].camera
    intrinsics = [camera.fx, camera.fy, camera.cx, camera.cy]
    surface = np.full((1, camera.height, camera.width), 2.0, dtype=np.float32)
    surface[:, :, : camera.width // 2] = np.inf  # no mesh hit: these rays march freely
    out = field.render(
        frames[1].camera_to_world, intrinsics, camera.width, camera.height, surface_depth=surface
    )
    hit = out.depth[0, :, camera.width // 2 :]
    assert ((hit > 2.0 * 0.95 - 1e-3) & (hit < 2.0 * 1.05 + 1e-3)).all()
    assert (out.depth[0, :, : camera.width // 2] - 2.0).abs().max() > 0.5


@pytest.mark.skipif(UNAVAILABLE is not None, reason=f"optional extra absent: {UNAVAILABLE}")
def test_resume_continues_from_the_last_checkpoint(trained, tmp_path):
    root, _ = trained
    # A copy of the trained run's nerfstudio folder, so the other tests keep theirs.
    shutil.copytree(root / "field.ns-train", tmp_path / "field.ns-train")
    with pytest.raises(FieldError, match="use --resume or --overwrite"):
        train_nerfacto(root / "dataset", tmp_path / "field", steps=STEPS + 2)
    before = load_field(root / "field").model.field.mlp_base.state_dict()
    train_nerfacto(
        root / "dataset",
        tmp_path / "field",
        steps=STEPS + 2,
        resume=True,
        nerfacto_args=REDUCED_NERFACTO_ARGS,
    )
    assert (tmp_path / "field" / "nerfstudio" / f"step-{STEPS + 1:09d}.ckpt").is_file()
    after = load_field(tmp_path / "field").model.field.mlp_base.state_dict()
    assert any(not torch.equal(before[name], after[name]) for name in before)


# --- the config reader: runs without nerfstudio (it needs PyYAML only) -----------------------

# The start of a config nerfstudio 1.1.5 writes (trimmed): dataclasses, a class reference, an
# anchor, paths, a tuple and an enumeration member.
NERFSTUDIO_CONFIG = """\
!!python/object:nerfstudio.engine.trainer.TrainerConfig
_target: !!python/name:nerfstudio.engine.trainer.Trainer ''
data: !!python/object/apply:pathlib.PosixPath
- data
- bird
max_num_iterations: 30000
optimizers:
  fields:
    optimizer: !!python/object:nerfstudio.engine.optimizers.AdamOptimizerConfig
      _target: &id001 !!python/name:torch.optim.adam.Adam ''
      eps: 1.0e-15
      lr: 0.01
  proposal_networks:
    optimizer: !!python/object:nerfstudio.engine.optimizers.AdamOptimizerConfig
      _target: *id001
      lr: 0.01
logging: !!python/object:nerfstudio.configs.base_config.LoggingConfig
  stats_to_track: !!python/tuple
  - !!python/object/apply:nerfstudio.utils.writer.EventName
    - Train Iter (time)
relative_model_dir: !!python/object/apply:pathlib.PosixPath
- nerfstudio_models
"""

# Each would run code under yaml.Loader (PyYAML's full loader, used before).
MALICIOUS_CONFIGS = [
    "!!python/object/apply:builtins.exec [\"open({marker!r}, 'w').write('ran')\"]\n",
    "a: !!python/object/new:builtins.exec [\"open({marker!r}, 'w').write('ran')\"]\n",
    "pipeline: !!python/object/apply:os.system ['touch {marker}']\n",
    "x: !!python/object:subprocess.Popen {{args: ['touch', '{marker}']}}\n",
    "x: !!python/name:os.system ''\n",
    "x: !!python/object/apply:nerfstudio_evil.run ['{marker}']\n",
]


def test_config_reads_as_plain_records_without_nerfstudio(tmp_path):
    from scene_builder.fields.nerfstudio_config import (
        PythonApply,
        PythonName,
        PythonObject,
        read_config,
    )

    path = tmp_path / "config.yml"
    path.write_text(NERFSTUDIO_CONFIG)
    config = read_config(path)
    assert isinstance(config, PythonObject)
    assert config.name == "nerfstudio.engine.trainer.TrainerConfig"
    assert config.state["data"] == PythonApply("pathlib.PosixPath", ["data", "bird"])
    fields = config.state["optimizers"]["fields"]["optimizer"]
    assert fields.state["_target"] == PythonName("torch.optim.adam.Adam")
    stats = config.state["logging"].state["stats_to_track"]
    assert isinstance(stats, tuple) and stats[0].name == "nerfstudio.utils.writer.EventName"


@pytest.mark.parametrize("text", MALICIOUS_CONFIGS)
def test_config_naming_anything_else_is_refused_without_running(tmp_path, text):
    import yaml

    from scene_builder.fields.nerfstudio_config import read_config

    marker = tmp_path / "marker"
    path = tmp_path / "config.yml"
    path.write_text(text.format(marker=str(marker)))
    with pytest.raises(FieldError) as caught:
        read_config(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "refused" in message
    assert not marker.exists()
    if "exec" in text:  # the payload is live: PyYAML's full loader runs it
        yaml.load(path.read_text(), Loader=yaml.UnsafeLoader)  # noqa: S506 - showing the risk
        assert marker.read_text() == "ran"


def test_field_folder_with_a_malicious_config_is_refused_by_load_field(tmp_path):
    import json

    field = tmp_path / "field"
    (field / "nerfstudio").mkdir(parents=True)
    marker = tmp_path / "marker"
    (field / "nerfstudio" / "config.yml").write_text(
        MALICIOUS_CONFIGS[0].format(marker=str(marker))
    )
    meta = {
        "format_version": 1,
        "backend": "nerfstudio",
        "config": "nerfstudio/config.yml",
        "checkpoint": "nerfstudio/step-000000004.ckpt",
    }
    (field / "field.json").write_text(json.dumps(meta))
    with pytest.raises(FieldError, match="python/object/apply tag naming 'builtins.exec' refused"):
        load_field(field)
    assert not marker.exists()


@pytest.mark.skipif(UNAVAILABLE is not None, reason=f"optional extra absent: {UNAVAILABLE}")
def test_config_builds_nerfstudio_objects(tmp_path):
    from nerfstudio.engine.trainer import TrainerConfig

    from scene_builder.fields.nerfstudio_config import build_config, read_config

    path = tmp_path / "config.yml"
    path.write_text(NERFSTUDIO_CONFIG)
    config = build_config(read_config(path), path)
    assert (
        isinstance(config, TrainerConfig) and config.relative_model_dir.name == "nerfstudio_models"
    )
    optimizers = config.optimizers
    assert optimizers["fields"]["optimizer"]._target is torch.optim.Adam
    assert (
        optimizers["fields"]["optimizer"]._target
        is optimizers["proposal_networks"]["optimizer"]._target
    )


@pytest.fixture()
def stand_in_nerfstudio(tmp_path, monkeypatch):
    """A tiny package named nerfstudio (a dataclass, an enumeration, a function), where the
    real one is absent, to check what ``build_config`` agrees to build."""
    if UNAVAILABLE is None:
        pytest.skip("the real nerfstudio is installed")
    import sys

    package = tmp_path / "stand_in" / "nerfstudio"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "things.py").write_text(
        "import dataclasses, enum\n"
        "@dataclasses.dataclass\nclass Config:\n    lr: float = 0.0\n"
        "class Kind(enum.Enum):\n    A = 'a'\n"
        "def danger(path):\n    open(path, 'w').write('ran')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "stand_in"))
    yield
    for name in [n for n in sys.modules if n == "nerfstudio" or n.startswith("nerfstudio.")]:
        del sys.modules[name]


def test_build_config_builds_dataclasses_paths_enums_and_nothing_else(
    tmp_path, stand_in_nerfstudio
):
    from scene_builder.fields.nerfstudio_config import build_config, read_config

    path = tmp_path / "config.yml"
    path.write_text(
        "!!python/object:nerfstudio.things.Config\n"
        "lr: 0.5\nkind: !!python/object/apply:nerfstudio.things.Kind ['a']\n"
        "where: !!python/object/apply:pathlib.PosixPath ['a', 'b']\n"
    )
    config = build_config(read_config(path), path)
    assert type(config).__name__ == "Config" and config.lr == 0.5
    assert config.kind.value == "a" and str(config.where) == "a/b"
    marker = tmp_path / "marker"
    for text, message in [
        (
            f"x: !!python/object/apply:nerfstudio.things.danger ['{marker}']",
            "not a nerfstudio enumeration",
        ),
        ("x: !!python/name:nerfstudio.things.danger ''", "is not a class"),
        ("x: !!python/object:nerfstudio.things.Kind {}", "not a nerfstudio config class"),
    ]:
        path.write_text(text + "\n")
        with pytest.raises(FieldError, match=message):
            build_config(read_config(path), path)
    assert not marker.exists()
