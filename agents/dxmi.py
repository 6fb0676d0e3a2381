"""DxMI policy: a Diffusion Policy fine-tuned into a 4-step sampler by maximum-entropy IRL.

The agent is ``agents.diffusion_policy``'s Diffusion Policy (same observation features,
action chunks and receding horizon) whose chunk sampler is replaced by DxMI's few-step sampler
(``generative.dxmi``, Yoon et al. 2024). ``learn`` first imitates with the DDPM epsilon loss
for ``pretrain_steps`` updates (or starts from a trained policy: ``from_diffusion_policy``),
then trains jointly, on the demonstrations' (observation window, action chunk) pairs:

- an energy E(observation features, action chunk), low on the expert's chunks and high on the
  sampler's: an inverse-RL reward (-E) over state-action pairs, saved with the agent;
- the ``num_steps``-step sampler (DDIM mean of the fine-tuned denoiser, learned per-step noise),
  as the maximum-entropy policy of that reward, by DxDP's per-step values.

The observation features are frozen during DxMI (image encoders keep their imitation weights).
Acting samples with the few-step sampler from the EMA weights. ``expert_energy_grid`` maps the
mean energy of the expert's own chunks over the cells of a drivable map (``eval.plots_energy``
draws it).

Checkpoints are one ``.pt`` of tensors (read with ``weights_only=True``) and a JSON string of
the settings inside it: nothing in the file executes code.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from agents.base import read_torch_checkpoint
from agents.diffusion_policy import (
    ActionScaler,
    ChunkDataset,
    DiffusionPolicyAgent,
    DiffusionPolicyConfig,
    DiffusionPolicyModel,
    ObservationSpec,
    make_config,
)
from agents.errors import AgentError, CheckpointError, DemoError
from common.atomic import atomic_path
from generative.dxdp import FewStepSampler, StepValue
from generative.dxmi import DxMI, DxMIConfig, EnergyNet


@dataclass
class DxMIAgentConfig:
    """DxMI's settings for the agent (the Diffusion Policy's are in ``DiffusionPolicyConfig``)."""

    pretrain_steps: int = 4000  # imitation updates before DxMI (0 when fine-tuning a given DP)
    num_steps: int = 4
    entropy_weight: float = 0.1
    energy_reg: float = 1.0
    eta: float = 0.5
    last_sigma: float = 0.02
    sampler_lr: float = 1e-4
    noise_lr: float = 1e-3
    energy_lr: float = 1e-3
    value_lr: float = 1e-3
    hidden: int = 256
    perturbed_negatives: float = 1.0  # noise-perturbed expert chunks as extra energy negatives
    # expert chunks paired with another step's observation as energy negatives: keeps the
    # energy reading the observation when demonstrations are multimodal (3 on the detour toy)
    mismatched_negatives: float = 0.0
    # random Fourier features of the normalised chunk for the energy: without them a smooth
    # energy puts its minimum between the expert's modes and the sampler drifts there
    fourier_features: int = 64
    fourier_scale: float = 0.5

    def generative(self, batch_size: int) -> DxMIConfig:
        shared = {f.name for f in fields(DxMIConfig)}
        values = {k: v for k, v in asdict(self).items() if k in shared}
        return DxMIConfig(**values, batch_size=batch_size, clip=1.0)


class DxMIPolicyModel(DiffusionPolicyModel):
    """The Diffusion Policy model with a few-step sampler and an energy over (features, chunk)."""

    def __init__(self, config: DiffusionPolicyConfig, spec, action_dim: int, dx: DxMIAgentConfig):
        super().__init__(config, spec, action_dim)
        cond_dim = self.features.dim * config.obs_horizon
        generative = dx.generative(config.batch_size)
        self.sampler = FewStepSampler(
            self.denoiser, self.schedule, dx.num_steps, dx.eta, dx.last_sigma, clip=1.0
        )
        self.energy = EnergyNet(
            config.pred_horizon * action_dim,
            cond_dim,
            generative.hidden,
            fourier_features=generative.fourier_features,
            fourier_scale=generative.fourier_scale,
        )

    @torch.no_grad()
    def sample(self, obs, generator: torch.Generator, num_steps: int | None = None):
        """Normalised chunks (B, pred_horizon, A) from the few-step sampler, clipped to [-1, 1]."""
        cond = self.features(obs)
        shape = (cond.shape[0], self.config.pred_horizon, self.action_dim)
        return self.sampler.sample(shape, cond, generator).clamp(-1, 1)

    @torch.no_grad()
    def chunk_energy(self, obs, chunks: torch.Tensor) -> torch.Tensor:
        """E of normalised chunks (B, H, A) given observation windows: low = expert-like."""
        return self.energy(chunks, self.features(obs))


class DxMIAgent(DiffusionPolicyAgent):
    """Diffusion Policy fine-tuned by DxMI (see the module docstring); SB3's four methods."""

    algorithm = "dxmi"

    def __init__(self, env=None, demos=None, config=None, dxmi=None, **overrides) -> None:
        known = {f.name for f in fields(DxMIAgentConfig)}
        self.dxmi_config = make_config(
            DxMIAgentConfig, dxmi, {k: v for k, v in overrides.items() if k in known}
        )
        overrides = {k: v for k, v in overrides.items() if k not in known}
        super().__init__(env=env, demos=demos, config=config, **overrides)
        self._build_models()

    def _build_models(self, dp_model: DiffusionPolicyModel | None = None) -> None:
        """DxMI models (optionally holding ``dp_model``'s weights) and the joint trainer."""
        torch.manual_seed(self.config.seed)
        self.model = DxMIPolicyModel(self.config, self.spec, self.action_dim, self.dxmi_config)
        if dp_model is not None:
            self.model.load_state_dict(dp_model.state_dict(), strict=False)
        self.ema_model = copy.deepcopy(self.model).requires_grad_(False)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
        )
        value = StepValue(self.model.energy.data_dim, self.model.energy.cond_dim)
        generative = self.dxmi_config.generative(self.config.batch_size)
        self.trainer = DxMI(self.model.sampler, self.model.energy, value, generative)

    @classmethod
    def from_diffusion_policy(cls, dp: DiffusionPolicyAgent, **overrides) -> DxMIAgent:
        """A DxMI agent starting from a trained Diffusion Policy (its EMA weights), no pretraining."""
        config = make_config(
            DiffusionPolicyConfig,
            dp.config,
            {k: v for k, v in overrides.items() if k in {f.name for f in fields(dp.config)}},
        )
        dx = make_config(
            DxMIAgentConfig,
            None,
            {"pretrain_steps": 0, **{k: v for k, v in overrides.items() if not hasattr(config, k)}},
        )
        agent = cls.__new__(cls)
        agent.config, agent.dxmi_config, agent.spec = config, dx, dp.spec
        agent.scaler, agent.action_dim, agent.env = dp.scaler, dp.action_dim, dp.env
        agent.demos, agent.generator = dp.demos, torch.Generator().manual_seed(config.seed)
        agent._build_models(dp.ema_model)
        agent.num_updates, agent._statistics_set = 0, dp._statistics_set
        agent.reset()
        return agent

    # ------------------------------------------------------------------ training
    def learn(self, total_timesteps: int, callback=None, **_ignored) -> DxMIAgent:
        """Imitation updates until ``pretrain_steps`` are done, then DxMI updates.

        ``callback(agent)`` runs after every update; False stops early. ``agent.last_losses``
        holds the latest DxMI losses (energy, value, sampler).
        """
        total = int(total_timesteps)
        imitation = max(0, min(total, self.dxmi_config.pretrain_steps - self.num_updates))
        if imitation:
            super().learn(imitation, callback)
        remaining = total - imitation
        if remaining <= 0:
            return self
        if not self.demos:
            raise DemoError("DxMIAgent.learn needs demonstrations (demos=PATH or list)")
        dataset = ChunkDataset(self.demos, self.spec, self.scaler, self.config)
        if not self._statistics_set and self.spec.vector_keys:
            self.model.features.set_statistics(dataset.vectors(self.spec))
            self._statistics_set = True
        self.model.train()
        for _ in range(remaining):
            rows = torch.randint(
                0, len(dataset), (self.config.batch_size,), generator=self.generator
            )
            obs, actions = dataset.batch(rows)
            with torch.no_grad():
                cond = self.model.features(obs)
            self.last_losses = self.trainer.update(actions, cond, self.generator)
            self._update_ema()
            self.num_updates += 1
            if callback is not None and callback(self) is False:
                break
        self.reset()
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """One ``.pt`` file: tensors, optimiser states and a JSON string of the settings."""
        settings = {
            "config": asdict(self.config),
            "dxmi": asdict(self.dxmi_config),
            "spec": asdict(self.spec),
            "action_low": self.scaler.low.tolist(),
            "action_high": self.scaler.high.tolist(),
            "num_updates": self.num_updates,
            "statistics_set": self._statistics_set,
        }
        payload = {
            "algorithm": self.algorithm,
            "settings": json.dumps(settings),
            "model": self.model.state_dict(),
            "ema_model": self.ema_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "trainer": self.trainer.state_dict(),
        }
        with atomic_path(Path(path)) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path, env=None) -> DxMIAgent:
        path = Path(path)
        data = read_torch_checkpoint(path, "dxmi")
        if data.get("algorithm") != cls.algorithm:
            raise CheckpointError(f"{path}: holds a {data.get('algorithm')!r} agent, not 'dxmi'")
        try:
            settings = json.loads(data["settings"])
            agent = cls.__new__(cls)
            agent.config = DiffusionPolicyConfig(**settings["config"])
            # agents saved before the energy had Fourier features have none
            agent.dxmi_config = DxMIAgentConfig(**{"fourier_features": 0, **settings["dxmi"]})
            agent.spec = ObservationSpec(**settings["spec"])
            agent.scaler = ActionScaler(
                np.asarray(settings["action_low"], np.float32),
                np.asarray(settings["action_high"], np.float32),
            )
        except (KeyError, TypeError, ValueError, AgentError) as error:
            raise CheckpointError(f"{path}: unreadable dxmi settings ({error})") from None
        agent.action_dim, agent.env, agent.demos = len(agent.scaler.low), env, None
        agent._build_models()
        agent.model.load_state_dict(data["model"])
        agent.ema_model.load_state_dict(data["ema_model"])
        agent.optimizer.load_state_dict(data["optimizer"])
        agent.trainer.load_state_dict(data["trainer"])
        agent.num_updates = settings["num_updates"]
        agent._statistics_set = settings["statistics_set"]
        agent.generator = torch.Generator().manual_seed(agent.config.seed + agent.num_updates)
        agent.reset()
        return agent

    # ------------------------------------------------------------------ the learned energy
    def chunk_energies(self, demos) -> tuple[np.ndarray, np.ndarray]:
        """E of each step's expert chunk in ``demos`` and the step's index into the demos."""
        dataset = ChunkDataset(demos, self.spec, self.scaler, self.config)
        energies = []
        self.ema_model.eval()
        for rows in torch.arange(len(dataset)).split(1024):
            obs, actions = dataset.batch(rows)
            energies.append(self.ema_model.chunk_energy(obs, actions))
        return torch.cat(energies).numpy(), np.arange(len(dataset))


def expert_energy_grid(agent: DxMIAgent, demos, drivable) -> np.ndarray:
    """Mean energy of the expert's action chunk at each cell of ``drivable`` (NaN: no visit).

    Each demonstration step is placed by its ``infos["pose"]`` (world x, y, yaw) into the
    drivable map's grid (``origin_xy``, ``resolution``); the map's shape is the result's.
    """
    poses = []
    for number, demo in enumerate(demos):
        pose = demo.infos.get("pose") if hasattr(demo, "infos") else None
        if pose is None or len(pose) != len(demo.actions):
            raise DemoError(f"demonstration {number} has no per-step pose to place it on the map")
        poses.append(np.asarray(pose)[:, :2])
    energies, _ = agent.chunk_energies(demos)
    xy = np.concatenate(poses)
    rows, cols = drivable.to_cells(xy)
    height, width = drivable.grid.shape
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    total, count = np.zeros((height, width)), np.zeros((height, width))
    np.add.at(total, (rows[inside], cols[inside]), energies[inside])
    np.add.at(count, (rows[inside], cols[inside]), 1)
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


__all__ = ["DxMIAgent", "DxMIAgentConfig", "DxMIPolicyModel", "expert_energy_grid"]
