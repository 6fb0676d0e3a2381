"""Diffusion Policy (Chi et al. 2023): imitation by denoising chunks of future actions.

The policy is a conditional diffusion model over an action *chunk* (the next ``pred_horizon``
actions), conditioned on features of the last ``obs_horizon`` observations. Training is the DDPM
epsilon loss on chunks cut from expert demonstrations (``agents.demos``); acting samples a chunk
with a few DDIM steps from the EMA weights and executes its first ``action_horizon`` actions
before sampling again (receding horizon). Because it models the whole distribution of expert
actions, it keeps distinct behaviours (go left or right around an obstacle) apart where a
Gaussian regression averages them.

Observations: a ``Box`` vector, or a ``Dict`` with a ``state`` vector and/or images (``rgb``
uint8, ``depth`` float); images go through the project's ``agents.encoders.SmallCNN``, trained
end to end with the denoiser. State vectors are standardised with the demonstrations' statistics;
actions are mapped to [-1, 1] by the action space bounds (every chunk is clipped there).

``DiffusionPolicyModel`` (featuriser + denoiser + normalisers) is also the actor of ``agents.qsm``.
``learn(total_timesteps)`` counts gradient steps (imitation has no environment steps); the
training driver (``driveenv train diffusion``) shows the progress bar and checkpoints.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from agents.base import read_torch_checkpoint
from agents.diffusion_data import ActionScaler, ChunkDataset
from agents.encoders import SmallCNN
from agents.errors import AgentError, CheckpointError, DemoError
from common.atomic import atomic_path
from generative.diffusion import NoiseSchedule, ScheduleConfig, ddim_sample, epsilon_loss
from generative.networks import ConditionalUnet1D, MLPDenoiser

IMAGE_KEYS = ("rgb", "depth")
NETWORKS = ("unet", "mlp")


@dataclass
class DiffusionPolicyConfig:
    """Hyper-parameters; the defaults are Chi et al.'s state-based setting scaled for a CPU."""

    obs_horizon: int = 2  # observations the policy sees (current and previous)
    pred_horizon: int = 8  # actions per predicted chunk (a multiple of 4 for the U-Net)
    action_horizon: int = 4  # actions executed before re-planning
    # "mlp" by default: a low-dimensional state chunk does not need the U-Net's temporal
    # convolutions (Chi et al.'s choice, better for long chunks and images), and the MLP samples
    # a chunk many times faster on a CPU core (benchmarks/diffusion.py --only latency).
    network: str = "mlp"  # or "unet" (1-D temporal U-Net with FiLM conditioning)
    down_dims: tuple[int, ...] = (64, 128, 256)
    mlp_hidden: int = 256
    mlp_depth: int = 3
    image_features: int = 64  # SmallCNN output size per image observation
    # Linear rather than Chi et al.'s cosine: with 8 DDIM steps the cosine schedule's first step
    # (alpha_bar ~ 1e-7) amplifies small noise-prediction errors into a biased choice of mode
    # (the detour toy's two equal modes; benchmarks/diffusion.py --only toy).
    schedule: str = "linear"
    diffusion_steps: int = 100
    inference_steps: int = 8  # DDIM steps when acting
    ema_decay: float = 0.995
    learning_rate: float = 3e-4
    weight_decay: float = 1e-6
    batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        self.down_dims = tuple(self.down_dims)
        if self.network not in NETWORKS:
            raise AgentError(f"network={self.network!r}: use one of {NETWORKS}")
        for name in ("obs_horizon", "pred_horizon", "action_horizon", "inference_steps"):
            if getattr(self, name) < 1:
                raise AgentError(f"{name}={getattr(self, name)}: must be at least 1")
        if self.action_horizon > self.pred_horizon:
            raise AgentError(
                f"action_horizon={self.action_horizon} exceeds pred_horizon={self.pred_horizon}"
            )
        if self.inference_steps > self.diffusion_steps:
            raise AgentError(
                f"inference_steps={self.inference_steps} exceeds diffusion_steps={self.diffusion_steps}"
            )
        levels = 2 ** (len(self.down_dims) - 1)
        if self.network == "unet" and self.pred_horizon % levels:
            raise AgentError(
                f"pred_horizon={self.pred_horizon} must be a multiple of {levels} for the U-Net "
                f"with down_dims={self.down_dims}"
            )


def make_config(cls, config, overrides: dict[str, Any]):
    """``config`` (or the defaults) with ``overrides``; unknown names are an ``AgentError``."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise AgentError(
            f"unknown {cls.__name__} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    base = asdict(config) if config is not None else {}
    return cls(**{**base, **overrides})


# ------------------------------------------------------------------------------------------------
# Observation specification and features


@dataclass
class ObservationSpec:
    """Which observation keys the policy reads, their shapes, and how to scale them."""

    vector_keys: list[str]
    image_keys: list[str]
    shapes: dict[str, list[int]]
    image_scales: dict[str, float] = field(default_factory=dict)  # divide to reach ~[0, 1]
    is_dict: bool = True

    @classmethod
    def from_space(cls, space: spaces.Space) -> ObservationSpec:
        if isinstance(space, spaces.Box):
            if len(space.shape) != 1:
                raise AgentError(f"a Box observation must be a vector, got shape {space.shape}")
            return cls(["obs"], [], {"obs": list(space.shape)}, is_dict=False)
        if not isinstance(space, spaces.Dict):
            raise AgentError(f"unsupported observation space {space}")
        vector_keys, image_keys, shapes, scales = [], [], {}, {}
        for key, sub in space.spaces.items():
            shapes[key] = list(sub.shape)
            if key in IMAGE_KEYS and len(sub.shape) == 3:
                image_keys.append(key)
                high = float(np.max(sub.high))
                scales[key] = (
                    255.0 if sub.dtype == np.uint8 else (high if math.isfinite(high) else 1.0)
                )
            elif len(sub.shape) == 1:
                vector_keys.append(key)
        if not vector_keys and not image_keys:
            raise AgentError(f"no usable observation keys in {list(space.spaces)}")
        return cls(sorted(vector_keys), sorted(image_keys), shapes, scales)

    @property
    def vector_dim(self) -> int:
        return sum(self.shapes[key][0] for key in self.vector_keys)

    def as_dict(self, obs: Any) -> dict[str, np.ndarray]:
        return obs if self.is_dict else {"obs": obs}


class ObservationFeatures(nn.Module):
    """Standardised vector keys + SmallCNN features of image keys, for ``obs_horizon`` steps."""

    def __init__(self, spec: ObservationSpec, image_features: int) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("mean", torch.zeros(spec.vector_dim))
        self.register_buffer("std", torch.ones(spec.vector_dim))
        self.encoders = nn.ModuleDict()
        for key in spec.image_keys:
            h, w, c = spec.shapes[key]
            self.encoders[key] = SmallCNN(in_channels=c, features_dim=image_features)
        self.dim = spec.vector_dim + image_features * len(spec.image_keys)

    def set_statistics(self, vectors: torch.Tensor) -> None:
        self.mean.copy_(vectors.mean(0))
        self.std.copy_(vectors.std(0).clamp(min=1e-3))

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """obs[key]: (B, T, ...) -> (B, T * dim)."""
        parts = []
        if self.spec.vector_keys:
            vectors = torch.cat([obs[key].float() for key in self.spec.vector_keys], dim=-1)
            parts.append((vectors - self.mean) / self.std)
        for key in self.spec.image_keys:
            images = obs[key]
            b, t = images.shape[:2]
            images = images.reshape(b * t, *images.shape[2:]).float() / self.spec.image_scales[key]
            features = self.encoders[key](images.permute(0, 3, 1, 2))  # HWC -> CHW
            parts.append(features.reshape(b, t, -1))
        return torch.cat(parts, dim=-1).flatten(1)


class DiffusionPolicyModel(nn.Module):
    """Observation features -> conditional denoiser over normalised action chunks (B, H, A)."""

    def __init__(self, config: DiffusionPolicyConfig, spec: ObservationSpec, action_dim: int):
        super().__init__()
        self.config, self.spec, self.action_dim = config, spec, action_dim
        self.features = ObservationFeatures(spec, config.image_features)
        cond_dim = self.features.dim * config.obs_horizon
        if config.network == "unet":
            self.denoiser = ConditionalUnet1D(action_dim, cond_dim, config.down_dims)
        else:
            self.denoiser = MLPDenoiser(
                config.pred_horizon * action_dim, cond_dim, config.mlp_hidden, config.mlp_depth
            )
        self.schedule = NoiseSchedule(
            ScheduleConfig(kind=config.schedule, num_steps=config.diffusion_steps)
        )

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, t, cond)

    def loss(self, obs: dict[str, torch.Tensor], actions: torch.Tensor, generator) -> torch.Tensor:
        cond = self.features(obs)
        return epsilon_loss(self.denoise, self.schedule, actions, cond, generator)

    @torch.no_grad()
    def sample(
        self, obs: dict[str, torch.Tensor], generator: torch.Generator, num_steps: int | None = None
    ) -> torch.Tensor:
        """Normalised action chunks (B, pred_horizon, A) in [-1, 1]."""
        cond = self.features(obs)
        shape = (cond.shape[0], self.config.pred_horizon, self.action_dim)
        steps = num_steps or self.config.inference_steps
        return ddim_sample(
            self.denoise, self.schedule, shape, cond, steps, generator=generator, clip=1.0
        )


# ------------------------------------------------------------------------------------------------
# Actions in [-1, 1]


class DiffusionPolicyAgent:
    """Diffusion Policy with SB3's learn / predict / save / load (see the module docstring)."""

    algorithm = "diffusion"

    def __init__(
        self,
        env=None,
        demos=None,
        config: DiffusionPolicyConfig | None = None,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
        **overrides,
    ) -> None:
        self.config = make_config(DiffusionPolicyConfig, config, overrides)
        observation_space = observation_space or getattr(env, "observation_space", None)
        action_space = action_space or getattr(env, "action_space", None)
        if observation_space is None or action_space is None:
            raise AgentError(
                "DiffusionPolicyAgent needs an env or both observation and action spaces"
            )
        self.env = env
        self.spec = ObservationSpec.from_space(observation_space)
        self.scaler = ActionScaler.from_space(action_space)
        self.action_dim = int(action_space.shape[0])
        torch.manual_seed(self.config.seed)
        self.model = DiffusionPolicyModel(self.config, self.spec, self.action_dim)
        self.ema_model = copy.deepcopy(self.model).requires_grad_(False)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
        )
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.num_updates = 0
        self.demos = self._read_demos(demos)
        self._statistics_set = False
        self.reset()

    @classmethod
    def create(
        cls, env, seed: int = 0, tensorboard_log=None, demos=None, **overrides
    ) -> DiffusionPolicyAgent:
        """The training driver's constructor: ``create(env, seed, demos=PATH, **config)``."""
        agent = cls(env=env, demos=demos, seed=seed, **overrides)
        agent.tensorboard_log = tensorboard_log
        return agent

    @staticmethod
    def _read_demos(demos):
        if demos is None or isinstance(demos, list | tuple):
            return demos
        from agents.demos import load_demos

        return load_demos(demos)

    # ------------------------------------------------------------------ training
    def set_demonstrations(self, demos) -> None:
        """Demonstrations to learn from: a ``.npz`` path or a list of trajectories."""
        self.demos = self._read_demos(demos)

    def learn(self, total_timesteps: int, callback=None, **_ignored) -> DiffusionPolicyAgent:
        """``total_timesteps`` gradient steps of the epsilon loss on demonstration chunks.

        ``callback(agent)`` runs after every step (the training driver's progress bar);
        returning False stops early. ``agent.last_loss`` holds the latest loss.
        """
        if not self.demos:
            raise DemoError("DiffusionPolicyAgent.learn needs demonstrations (demos=PATH or list)")
        dataset = ChunkDataset(self.demos, self.spec, self.scaler, self.config)
        if not self._statistics_set and self.spec.vector_keys:
            self.model.features.set_statistics(dataset.vectors(self.spec))
            self.ema_model.features.load_state_dict(self.model.features.state_dict())
            self._statistics_set = True
        self.model.train()
        for _ in range(int(total_timesteps)):
            rows = torch.randint(
                0, len(dataset), (self.config.batch_size,), generator=self.generator
            )
            obs, actions = dataset.batch(rows)
            loss = self.model.loss(obs, actions, self.generator)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self._update_ema()
            self.num_updates += 1
            self.last_loss = loss.item()
            if callback is not None and callback(self) is False:
                break
        self.reset()
        return self

    @property
    def num_timesteps(self) -> int:
        return self.num_updates

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Warm-up as in Chi et al.: the decay grows from 0 towards ema_decay.
        decay = min(self.config.ema_decay, (1 + self.num_updates) / (10 + self.num_updates))
        for ema, live in zip(self.ema_model.parameters(), self.model.parameters(), strict=True):
            ema.mul_(decay).add_(live.detach(), alpha=1 - decay)
        for ema, live in zip(self.ema_model.buffers(), self.model.buffers(), strict=True):
            ema.copy_(live)

    # ------------------------------------------------------------------ acting
    def reset(self) -> None:
        """Forget observation histories and queued actions (call at an episode's start)."""
        self._history: dict[int, deque] = {}
        self._queue: dict[int, deque] = {}

    def _batched(self, observation) -> tuple[dict[str, np.ndarray], bool]:
        obs = {key: np.asarray(value) for key, value in self.spec.as_dict(observation).items()}
        key = (self.spec.vector_keys + self.spec.image_keys)[0]
        batched = obs[key].ndim == len(self.spec.shapes[key]) + 1
        if not batched:
            obs = {k: v[None] for k, v in obs.items()}
        return obs, batched

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """The next action for each environment: pops the queued chunk, re-plans when empty.

        ``deterministic`` draws the DDIM starting noise from a fixed seed, so the same history
        gives the same chunk; otherwise the agent's generator moves on.
        """
        obs, batched = self._batched(observation)
        keys = self.spec.vector_keys + self.spec.image_keys
        n = len(obs[keys[0]])
        starts = (
            np.zeros(n, bool) if episode_start is None else np.asarray(episode_start).reshape(-1)
        )
        for i in range(n):
            current = {key: obs[key][i] for key in keys}
            if i not in self._history or starts[i]:
                self._history[i] = deque(
                    [current] * self.config.obs_horizon, self.config.obs_horizon
                )
                self._queue[i] = deque()
            else:
                self._history[i].append(current)
        replan = [i for i in range(n) if not self._queue[i]]
        if replan:
            window = {
                key: torch.from_numpy(
                    np.stack([np.stack([h[key] for h in self._history[i]]) for i in replan])
                )
                for key in keys
            }
            generator = (
                torch.Generator().manual_seed(self.config.seed) if deterministic else self.generator
            )
            self.ema_model.eval()
            chunks = self.ema_model.sample(window, generator).numpy()
            for row, i in enumerate(replan):
                actions = self.scaler.denormalise(chunks[row, : self.config.action_horizon])
                self._queue[i].extend(actions.astype(np.float32))
        actions = np.stack([self._queue[i].popleft() for i in range(n)])
        return (actions if batched else actions[0]), state

    def sample_chunks(self, observation_window: dict[str, np.ndarray], n: int, seed: int = 0):
        """``n`` action chunks (n, pred_horizon, A) for one observation window (obs_horizon, ...)."""
        window = {
            key: torch.from_numpy(np.repeat(np.asarray(value)[None], n, axis=0))
            for key, value in self.spec.as_dict(observation_window).items()
            if key in self.spec.vector_keys + self.spec.image_keys
        }
        chunks = self.ema_model.sample(window, torch.Generator().manual_seed(seed)).numpy()
        return self.scaler.denormalise(chunks)

    # ------------------------------------------------------------------ persistence
    def checkpoint(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "config": asdict(self.config),
            "spec": asdict(self.spec),
            "action_low": self.scaler.low.tolist(),
            "action_high": self.scaler.high.tolist(),
            "model": self.model.state_dict(),
            "ema_model": self.ema_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "num_updates": self.num_updates,
            "statistics_set": self._statistics_set,
        }

    def save(self, path) -> None:
        """One ``.pt`` file (tensors and plain values only), written atomically."""
        with atomic_path(Path(path)) as tmp:
            torch.save(self.checkpoint(), tmp)

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any], env=None, source: str = "checkpoint"):
        if data.get("algorithm") != cls.algorithm:
            raise CheckpointError(
                f"{source}: holds a {data.get('algorithm')!r} agent, not {cls.algorithm!r}"
            )
        spec = ObservationSpec(**data["spec"])
        config = DiffusionPolicyConfig(**data["config"])
        agent = cls.__new__(cls)
        agent.config, agent.spec, agent.env, agent.demos = config, spec, env, None
        agent.scaler = ActionScaler(
            np.asarray(data["action_low"], np.float32), np.asarray(data["action_high"], np.float32)
        )
        agent.action_dim = len(agent.scaler.low)
        agent.model = DiffusionPolicyModel(config, spec, agent.action_dim)
        agent.model.load_state_dict(data["model"])
        agent.ema_model = copy.deepcopy(agent.model).requires_grad_(False)
        agent.ema_model.load_state_dict(data["ema_model"])
        agent.optimizer = torch.optim.AdamW(
            agent.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        agent.optimizer.load_state_dict(data["optimizer"])
        agent.generator = torch.Generator().manual_seed(config.seed + data["num_updates"])
        agent.num_updates = data["num_updates"]
        agent._statistics_set = data["statistics_set"]
        agent.reset()
        return agent

    @classmethod
    def load(cls, path, env=None) -> DiffusionPolicyAgent:
        path = Path(path)
        data = read_torch_checkpoint(path, "diffusion")
        return cls.from_checkpoint(data, env, str(path))
