"""Q-score matching (Psenka et al. 2024): an off-policy actor-critic with a diffusion actor.

The actor is a diffusion model over one action conditioned on the observation (the
``DiffusionPolicyModel`` of ``agents.diffusion_policy`` with chunks of length 1). Its score,
-eps / sigma, should point where the critic's Q rises, so instead of back-propagating a policy
loss through the whole sampling chain, QSM regresses the network's noise prediction directly
onto the action-gradient of the critic at noisy actions:

    a_t = sqrt(ab_t) a + sqrt(1 - ab_t) z          (a from the replay buffer)
    L_actor = || -eps_theta(a_t, t, s) - scale * grad_a mean_i Q_i(s, a_t) ||^2

(the gradient divided by its batch-mean norm, so ``scale`` does not depend on the reward scale).
With ``behaviour_weight`` w > 0 the target becomes scale * grad Q - w z: the actor's score is then
the buffer's behaviour score plus scale * grad Q, a regularised improvement step used when
fine-tuning an imitation policy.

The critics are twin Q-networks with Polyak-averaged targets and the clipped double-Q target
r + gamma (1 - done) min_i Q_i'(s', a'), a' sampled from the actor (no gradient through the
sampler anywhere). Exploration is the sampler's own noise (DDIM with ``eta`` = 1 by default).

``QSMAgent.from_diffusion_policy(dp, env)`` starts from a Diffusion Policy trained by imitation
(it must predict single actions from single observations: ``pred_horizon = obs_horizon = 1``)
and fine-tunes it from reward. Observations must be vectors (``Box`` or a ``Dict`` of vectors);
the critic has no image encoder. ``learn(total_timesteps)`` counts environment steps; ``env`` is
a gymnasium Env or an SB3 VecEnv (``driveenv train qsm`` passes the simulator's).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.base import read_torch_checkpoint
from agents.diffusion_policy import (
    ActionScaler,
    DiffusionPolicyAgent,
    DiffusionPolicyConfig,
    DiffusionPolicyModel,
    ObservationSpec,
    make_config,
)
from agents.errors import AgentError, CheckpointError
from common.atomic import atomic_path
from generative.diffusion import ddim_sample


@dataclass
class QSMConfig:
    """Hyper-parameters (SAC-like defaults for the critic; a small, fast diffusion actor)."""

    actor_hidden: int = 256
    actor_depth: int = 2
    diffusion_steps: int = 10  # one action in a few dimensions needs few noise levels
    schedule: str = "vp"
    inference_steps: int = 5  # DDIM steps when acting and for critic targets
    eta: float = 1.0  # DDIM stochasticity while exploring (1 ~ DDPM)
    critic_hidden: int = 256
    q_score_scale: float = 3.0  # typical size of the actor's noise target (an inverse temperature)
    actor_learning_rate: float = 3e-4
    critic_learning_rate: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    buffer_size: int = 1_000_000
    learning_starts: int = 1000
    # Updates during which only the critics learn: a policy from imitation is not pulled around
    # by a still-random critic (``from_diffusion_policy`` uses 2000 unless told otherwise).
    actor_update_start: int = 0
    # 0: pure QSM (-eps matches scale * grad Q). 1: the target adds the denoising noise of the
    # buffer actions, i.e. score = score of past behaviour + scale * grad Q, so fine-tuning
    # improves on the imitation policy instead of replacing it (``from_diffusion_policy``).
    behaviour_weight: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.inference_steps > self.diffusion_steps:
            raise AgentError(
                f"inference_steps={self.inference_steps} exceeds diffusion_steps={self.diffusion_steps}"
            )
        if not 0 < self.gamma <= 1 or not 0 < self.tau <= 1:
            raise AgentError(f"gamma={self.gamma} and tau={self.tau} must be in (0, 1]")

    def actor_config(self) -> DiffusionPolicyConfig:
        return DiffusionPolicyConfig(
            obs_horizon=1,
            pred_horizon=1,
            action_horizon=1,
            network="mlp",
            mlp_hidden=self.actor_hidden,
            mlp_depth=self.actor_depth,
            schedule=self.schedule,
            diffusion_steps=self.diffusion_steps,
            inference_steps=self.inference_steps,
            seed=self.seed,
        )


class TwinCritic(nn.Module):
    """Two independent Q(s, a) MLPs."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: int) -> None:
        super().__init__()

        def q():
            return nn.Sequential(
                nn.Linear(obs_dim + action_dim, hidden),
                nn.ReLU(),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
                nn.Linear(hidden, 1),
            )

        self.q1, self.q2 = q(), q()

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class ReplayBuffer:
    """Fixed-size ring buffer of (obs, normalised action, reward, next obs, terminated)."""

    def __init__(self, size: int, obs_dim: int, action_dim: int) -> None:
        self.obs = np.zeros((size, obs_dim), np.float32)
        self.next_obs = np.zeros((size, obs_dim), np.float32)
        self.actions = np.zeros((size, action_dim), np.float32)
        self.rewards = np.zeros(size, np.float32)
        self.terminated = np.zeros(size, np.float32)
        self.size, self.count, self.position = size, 0, 0

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        i = self.position
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, terminated
        self.position = (i + 1) % self.size
        self.count = min(self.count + 1, self.size)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        rows = rng.integers(0, self.count, n)
        return tuple(
            torch.from_numpy(array[rows])
            for array in (self.obs, self.actions, self.rewards, self.next_obs, self.terminated)
        )


class QSMAgent:
    """Q-score matching with SB3's learn / predict / save / load (see the module docstring)."""

    algorithm = "qsm"

    def __init__(
        self,
        env,
        config: QSMConfig | None = None,
        actor: DiffusionPolicyModel | None = None,
        **overrides,
    ):
        self.config = make_config(QSMConfig, config, overrides)
        self.env = env
        self.venv = _as_vec_env(env)
        self._last_obs = None
        self.spec = ObservationSpec.from_space(env.observation_space)
        if self.spec.image_keys:
            raise AgentError(
                f"QSM reads vector observations only; drop {self.spec.image_keys} (obs='state')"
            )
        self.scaler = ActionScaler.from_space(env.action_space)
        self.action_dim = int(env.action_space.shape[0])
        torch.manual_seed(self.config.seed)
        # Pure RL warms up with uniform random actions; a given actor acts from the start.
        self._pretrained = actor is not None
        self.actor = actor or DiffusionPolicyModel(
            self.config.actor_config(), self.spec, self.action_dim
        )
        obs_dim = self.spec.vector_dim
        self.critic = TwinCritic(obs_dim, self.action_dim, self.config.critic_hidden)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(
            self.actor.parameters(), lr=self.config.actor_learning_rate
        )
        self.critic_optimizer = torch.optim.Adam(
            self.critic.parameters(), lr=self.config.critic_learning_rate
        )
        self.buffer = ReplayBuffer(self.config.buffer_size, obs_dim, self.action_dim)
        self.rng = np.random.default_rng(self.config.seed)
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.num_timesteps = 0
        self.num_updates = 0
        self.episode_returns: list[float] = []

    @classmethod
    def create(cls, env, seed: int = 0, tensorboard_log=None, **overrides) -> QSMAgent:
        """The training driver's constructor (``env`` a gymnasium Env or an SB3 VecEnv)."""
        agent = cls(env, seed=seed, **overrides)
        agent.tensorboard_log = tensorboard_log
        return agent

    @classmethod
    def from_diffusion_policy(cls, policy: DiffusionPolicyAgent, env, **overrides) -> QSMAgent:
        """Fine-tune an imitation-trained Diffusion Policy (single-step chunks) from reward."""
        dp = policy.config
        if dp.pred_horizon != 1 or dp.obs_horizon != 1:
            raise AgentError(
                "QSM fine-tunes single-action policies: train the Diffusion Policy with "
                f"pred_horizon=1, obs_horizon=1 (got {dp.pred_horizon}, {dp.obs_horizon})"
            )
        settings = {
            "diffusion_steps": dp.diffusion_steps,
            "schedule": dp.schedule,
            "inference_steps": dp.inference_steps,
            "actor_hidden": dp.mlp_hidden,
            "actor_depth": dp.mlp_depth,
            "actor_update_start": 1000,
            "behaviour_weight": 1.0,
            **overrides,
        }
        return cls(env, actor=copy.deepcopy(policy.ema_model).requires_grad_(True), **settings)

    # ------------------------------------------------------------------ acting
    def _vectors(self, observation) -> tuple[np.ndarray, bool]:
        obs = self.spec.as_dict(observation)
        vectors = np.concatenate(
            [np.asarray(obs[key], np.float32) for key in self.spec.vector_keys], axis=-1
        )
        batched = vectors.ndim == 2
        return (vectors if batched else vectors[None]), batched

    def _normalised_obs(self, vectors: torch.Tensor) -> torch.Tensor:
        features = self.actor.features
        return (vectors - features.mean) / features.std

    @torch.no_grad()
    def _sample(self, vectors: torch.Tensor, generator, eta: float) -> torch.Tensor:
        """Normalised actions (B, A) from the diffusion actor."""
        cond = self._normalised_obs(vectors)
        shape = (vectors.shape[0], 1, self.action_dim)
        actions = ddim_sample(
            self.actor.denoise,
            self.actor.schedule,
            shape,
            cond,
            self.config.inference_steps,
            eta=eta,
            generator=generator,
            clip=1.0,
        )
        return actions[:, 0]

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Actions for one observation or a batch; deterministic = DDIM (eta 0) from fixed noise."""
        vectors, batched = self._vectors(observation)
        if deterministic:
            generator, eta = torch.Generator().manual_seed(self.config.seed), 0.0
        else:
            generator, eta = self.generator, self.config.eta
        normalised = self._sample(torch.from_numpy(vectors), generator, eta).numpy()
        actions = self.scaler.denormalise(normalised).astype(np.float32)
        return (actions if batched else actions[0]), state

    def reset(self) -> None:
        """Nothing to forget between episodes (kept for the common interface)."""

    # ------------------------------------------------------------------ learning
    def _update(self) -> dict[str, float]:
        cfg = self.config
        obs, actions, rewards, next_obs, terminated = self.buffer.sample(cfg.batch_size, self.rng)
        obs_n, next_obs_n = self._normalised_obs(obs), self._normalised_obs(next_obs)
        # Critic: clipped double-Q target with actions sampled from the actor.
        next_actions = self._sample(next_obs, self.generator, cfg.eta)
        with torch.no_grad():
            target_q = torch.min(*self.critic_target(next_obs_n, next_actions))
            target = rewards + cfg.gamma * (1 - terminated) * target_q
        q1, q2 = self.critic(obs_n, actions)
        critic_loss = ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        self.num_updates += 1
        if self.num_updates <= cfg.actor_update_start:
            self._polyak()
            return {"critic_loss": critic_loss.item()}
        # Actor: match -eps to scale * grad_a Q at noisy buffer actions.
        schedule = self.actor.schedule
        t = torch.randint(0, schedule.num_steps, (cfg.batch_size,), generator=self.generator)
        noise = torch.randn(actions.shape, generator=self.generator)
        noisy = schedule.add_noise(actions, noise, t).requires_grad_(True)
        q1, q2 = self.critic(obs_n, noisy)
        (q_grad,) = torch.autograd.grad((q1 + q2).sum() * 0.5, noisy)
        # Rewards of any scale: divide by the batch's mean gradient norm, so the target noise
        # has a typical size of ``q_score_scale`` (like SAC's entropy weight, a temperature).
        q_grad = q_grad / (q_grad.norm(dim=-1).mean() + 1e-6)
        eps = self.actor.denoise(noisy.detach()[:, None], t, obs_n)[:, 0]
        target = cfg.q_score_scale * q_grad - cfg.behaviour_weight * noise
        actor_loss = ((-eps - target) ** 2).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        self._polyak()
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}

    @torch.no_grad()
    def _polyak(self) -> None:
        tau = self.config.tau
        for target, live in zip(
            self.critic_target.parameters(), self.critic.parameters(), strict=True
        ):
            target.mul_(1 - tau).add_(live, alpha=tau)

    def learn(self, total_timesteps: int, callback=None, **_ignored) -> QSMAgent:
        """Collect ``total_timesteps`` environment steps (over all envs), one update per step.

        ``callback(agent)`` runs after every environment step (the training driver's progress
        bar); returning False stops. Finished episodes' returns go to ``agent.episode_returns``.
        """
        cfg, venv = self.config, self.venv
        if self._last_obs is None:
            venv.seed(cfg.seed)
            self._last_obs = venv.reset()
            self._running_returns = np.zeros(venv.num_envs)
        steps = 0
        while steps < total_timesteps:
            vectors, _ = self._vectors(self._last_obs)
            if self.num_timesteps < cfg.learning_starts and not self._pretrained:
                normalised = self.rng.uniform(-1, 1, (venv.num_envs, self.action_dim))
            else:
                normalised = self._sample(torch.from_numpy(vectors), self.generator, cfg.eta)
                normalised = normalised.numpy()
            normalised = normalised.astype(np.float32)
            next_obs, rewards, dones, infos = venv.step(self.scaler.denormalise(normalised))
            next_vectors, _ = self._vectors(next_obs)
            for i in range(venv.num_envs):
                final = next_vectors[i]
                terminated = bool(dones[i]) and not infos[i].get("TimeLimit.truncated", False)
                if dones[i] and "terminal_observation" in infos[i]:
                    final = self._vectors(infos[i]["terminal_observation"])[0][0]
                self.buffer.add(vectors[i], normalised[i], rewards[i], final, float(terminated))
                self._running_returns[i] += float(rewards[i])
                if dones[i]:
                    self.episode_returns.append(float(self._running_returns[i]))
                    self._running_returns[i] = 0.0
            self._last_obs = next_obs
            self.num_timesteps += venv.num_envs
            steps += venv.num_envs
            if self.num_timesteps >= cfg.learning_starts:
                self.last_losses = self._update()
            if callback is not None and callback(self) is False:
                break
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        data: dict[str, Any] = {
            "algorithm": self.algorithm,
            "config": asdict(self.config),
            "actor_config": asdict(self.actor.config),
            "spec": asdict(self.spec),
            "action_low": self.scaler.low.tolist(),
            "action_high": self.scaler.high.tolist(),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "num_timesteps": self.num_timesteps,
            "num_updates": self.num_updates,
        }
        with atomic_path(Path(path)) as tmp:
            torch.save(data, tmp)

    @classmethod
    def load(cls, path, env=None) -> QSMAgent:
        path = Path(path)
        data = read_torch_checkpoint(path, "QSM")
        if data.get("algorithm") != cls.algorithm:
            raise CheckpointError(f"{path}: not a QSM checkpoint")
        spec = ObservationSpec(**data["spec"])
        if env is None:
            env = _SpacesOnly(spec, data["action_low"], data["action_high"])
        actor = DiffusionPolicyModel(
            DiffusionPolicyConfig(**data["actor_config"]), spec, len(data["action_low"])
        )
        actor.load_state_dict(data["actor"])
        agent = cls(env, QSMConfig(**data["config"]), actor=actor)
        agent.critic.load_state_dict(data["critic"])
        agent.critic_target.load_state_dict(data["critic_target"])
        agent.actor_optimizer.load_state_dict(data["actor_optimizer"])
        agent.critic_optimizer.load_state_dict(data["critic_optimizer"])
        agent.num_timesteps = data["num_timesteps"]
        agent.num_updates = data["num_updates"]
        return agent


def _as_vec_env(env):
    """SB3's VecEnv API for both kinds of env (auto-reset, terminal observations in infos)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

    if isinstance(env, VecEnv):
        return env
    if isinstance(env, _SpacesOnly):
        return env
    return DummyVecEnv([lambda: env])


class _SpacesOnly:
    """Stands in for the environment of a loaded agent that will only ``predict``."""

    def __init__(self, spec: ObservationSpec, low, high) -> None:
        from gymnasium import spaces

        boxes = {
            key: spaces.Box(-np.inf, np.inf, tuple(spec.shapes[key]), np.float32)
            for key in spec.vector_keys
        }
        self.observation_space = spaces.Dict(boxes) if spec.is_dict else boxes["obs"]
        self.action_space = spaces.Box(
            np.asarray(low, np.float32), np.asarray(high, np.float32), dtype=np.float32
        )

    num_envs = 1

    def seed(self, seed=None):
        raise AgentError("this QSM agent was loaded without env=: pass one to keep learning")
