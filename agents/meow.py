"""MEow: maximum-entropy RL with an energy-based normalizing flow (Chao et al., NeurIPS 2024).

One network is both the policy and the soft Q-function. The policy is a state-conditioned
normalizing flow over actions: a Gaussian prior ``z ~ N(0, sigma(s)^2)`` with bounded log-std,
then additive coupling layers conditioned on the state, then ``tanh`` so actions lie in (-1, 1).
Read as an energy-based model, its unnormalised log-density splits into

    log p~(a|s) = -0.5 * |z / sigma(s)|^2 + log|det d atanh(a)/da|      (depends on a)
    log Z(s)    = d/2 * log(2 pi) + sum log sigma(s)                   (does not)

(additive couplings have unit Jacobian, so contribute nothing to either), and MEow defines

    Q(s, a) = alpha * log p~(a|s) + b_i(s),   V(s) = alpha * log Z(s) + b_i(s),

so ``pi(a|s) = exp((Q - V) / alpha)`` exactly, with no Monte-Carlo estimate of the soft value.
``b_1, b_2`` are learnable reward shifts (state networks, zero-initialised); with two of them the
target takes ``min_i V_target_i(s')``: the paper's shifting-based clipped double Q. The only loss is
the soft Bellman error ``sum_i (Q_i(s, a) - r - gamma * (1 - done) * min_i V_target_i(s'))^2`` with a
Polyak-averaged target network. The deterministic action is the prior mean (zero) pushed through
the flow. ``alpha`` is fixed, or tuned towards a target entropy; when tuned, the current value is
the one that scales Q and V (the reference code froze it inside the policy).

Written here as a subclass of SB3's ``OffPolicyAlgorithm`` (the way sb3-contrib adds algorithms):
replay buffer, VecEnv, callbacks, logger and TensorBoard, save/load all come from SB3. No library
provides MEow; the flow itself is ~100 lines, so it is written out instead of adding a flow
dependency.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import polyak_update
from torch import nn
from torch.nn import functional as F

from agents.base import SB3AgentMixin
from agents.encoders import ObservationEncoder

ACTION_EPS = 1e-5  # actions are clamped to (-1 + eps, 1 - eps) before atanh


def _mlp(sizes: list[int], layer_norm: bool = False, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 2):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if layer_norm:
            layers.append(nn.LayerNorm(sizes[i + 1]))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def _zero_last(net: nn.Sequential) -> nn.Sequential:
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class AdditiveCoupling(nn.Module):
    """``y = x + (1 - m) * t(m * x, s)``: volume preserving, so log|det| = 0 in both directions."""

    def __init__(self, mask: torch.Tensor, features_dim: int, hidden: list[int], dropout: float):
        super().__init__()
        self.register_buffer("mask", mask)
        self.shift = _mlp([mask.numel() + features_dim, *hidden, mask.numel()], True, dropout)
        for module in self.shift:
            if isinstance(module, nn.Linear):
                nn.init.orthogonal_(module.weight)
                nn.init.zeros_(module.bias)

    def _t(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return (1 - self.mask) * self.shift(torch.cat([self.mask * x, features], dim=1))

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return x + self._t(x, features)

    def inverse(self, y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return y - self._t(y, features)  # the masked half is unchanged, so t sees the same input


class EnergyFlow(nn.Module):
    """The flow policy and its energy: log p~(a|s), log Z(s), sampling, reward shifts."""

    def __init__(
        self,
        features_extractor: BaseFeaturesExtractor,
        action_dim: int,
        hidden: list[int],
        n_coupling_pairs: int,
        log_std_bounds: tuple[float, float],
        dropout: float,
        shift_hidden: list[int],
    ):
        super().__init__()
        self.features_extractor = features_extractor
        features_dim = features_extractor.features_dim
        self.action_dim = action_dim
        self.log_std_min, self.log_std_max = log_std_bounds
        self.prior_log_std = _zero_last(_mlp([features_dim, *hidden, action_dim]))
        mask = torch.tensor([float(i % 2 == 0) for i in range(action_dim)])
        couplings = []
        for _ in range(n_coupling_pairs):
            couplings += [
                AdditiveCoupling(mask, features_dim, hidden, dropout),
                AdditiveCoupling(1 - mask, features_dim, hidden, dropout),
            ]
        self.couplings = nn.ModuleList(couplings)
        self.reward_shifts = nn.ModuleList(
            [_zero_last(_mlp([features_dim, *shift_hidden, 1])) for _ in range(2)]
        )

    def log_std(self, features: torch.Tensor) -> torch.Tensor:
        """Prior log-std, squashed into [log_std_min, log_std_max]."""
        unit = torch.tanh(self.prior_log_std(features))
        return self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (unit + 1)

    def log_partition(self, features: torch.Tensor) -> torch.Tensor:
        """log Z(s): the Gaussian prior's normaliser, (B,)."""
        return self.log_std(features).sum(1) + 0.5 * self.action_dim * math.log(2 * math.pi)

    def log_unnormalized(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log p~(a|s) = prior energy at z = flow^-1(atanh a) plus the atanh log-det, (B,)."""
        actions = actions.clamp(-1 + ACTION_EPS, 1 - ACTION_EPS)
        z = torch.atanh(actions)
        log_det = -torch.log1p(-actions.pow(2)).sum(1)  # d atanh(a)/da = 1 / (1 - a^2)
        for coupling in reversed(self.couplings):
            z = coupling.inverse(z, features)
        std = self.log_std(features).exp()
        return -0.5 * (z / std).pow(2).sum(1) + log_det

    def shifts(self, features: torch.Tensor) -> torch.Tensor:
        """The two learnable reward shifts b_1(s), b_2(s), (B, 2)."""
        return torch.cat([shift(features) for shift in self.reward_shifts], dim=1)

    def sample(
        self, features: torch.Tensor, deterministic: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions in (-1, 1) and their exact log pi(a|s) by the forward change of variables."""
        log_std = self.log_std(features)
        noise = torch.zeros_like(log_std) if deterministic else torch.randn_like(log_std)
        x = noise * log_std.exp()
        log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(1)
        for coupling in self.couplings:
            x = coupling(x, features)
        # log(1 - tanh(x)^2) written so it stays finite when tanh saturates
        log_det = 2.0 * (math.log(2.0) - x - F.softplus(-2.0 * x))
        return torch.tanh(x), log_prob - log_det.sum(1)


class MEowPolicy(BasePolicy):
    """SB3 policy holding the flow, its Polyak target and the temperature used to scale Q and V."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        hidden: list[int] | None = None,
        n_coupling_pairs: int = 2,
        log_std_bounds: tuple[float, float] = (-5.0, -0.3),
        dropout: float = 0.1,
        shift_hidden: list[int] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
            normalize_images=normalize_images,
        )
        self.flow_kwargs = dict(
            action_dim=int(np.prod(action_space.shape)),
            hidden=list(hidden or [64, 64]),
            n_coupling_pairs=n_coupling_pairs,
            log_std_bounds=tuple(log_std_bounds),
            dropout=dropout,
            shift_hidden=list(shift_hidden or [256, 256]),
        )
        self.flow = EnergyFlow(self.make_features_extractor(), **self.flow_kwargs)
        self.flow_target = EnergyFlow(self.make_features_extractor(), **self.flow_kwargs)
        self.flow_target.load_state_dict(self.flow.state_dict())
        self.flow_target.train(False)
        self.register_buffer("log_alpha", torch.zeros(()))
        self.optimizer = self.optimizer_class(
            self.flow.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        kwargs = dict(self.flow_kwargs)
        kwargs.pop("action_dim")
        data.update(
            kwargs,
            lr_schedule=self._dummy_schedule,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            features_extractor_class=self.features_extractor_class,
            features_extractor_kwargs=self.features_extractor_kwargs,
        )
        return data

    def features(self, obs, flow: EnergyFlow | None = None) -> torch.Tensor:
        flow = flow or self.flow
        return self.extract_features(obs, flow.features_extractor)

    def q_and_v(self, obs, actions: torch.Tensor, flow: EnergyFlow | None = None):
        """Soft Q(s, a) and V(s), each (B, 2): one column per reward shift."""
        flow = flow or self.flow
        features = self.features(obs, flow)
        shifts = flow.shifts(features)
        q = self.alpha * flow.log_unnormalized(features, actions)[:, None] + shifts
        v = self.alpha * flow.log_partition(features)[:, None] + shifts
        return q, v

    def value(self, obs, flow: EnergyFlow | None = None) -> torch.Tensor:
        """Soft V(s), (B, 2), without any action."""
        flow = flow or self.flow
        features = self.features(obs, flow)
        return self.alpha * flow.log_partition(features)[:, None] + flow.shifts(features)

    def action_log_prob(self, obs, deterministic: bool = False):
        return self.flow.sample(self.features(obs), deterministic)

    def _predict(self, observation, deterministic: bool = False) -> torch.Tensor:
        return self.action_log_prob(observation, deterministic)[0]

    def forward(self, obs, deterministic: bool = False) -> torch.Tensor:
        return self._predict(obs, deterministic)

    def set_training_mode(self, mode: bool) -> None:
        self.flow.train(mode)
        self.training = mode


class MultiInputMEowPolicy(MEowPolicy):
    """MEow policy for Dict observations (state and/or images), encoded by ``ObservationEncoder``."""

    def __init__(self, *args, features_extractor_class=ObservationEncoder, **kwargs):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class MEow(OffPolicyAlgorithm):
    """MEow with SB3's off-policy machinery. ``ent_coef`` is alpha: a float, or "auto"/"auto_0.2"."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MEowPolicy,
        "MultiInputPolicy": MultiInputMEowPolicy,
    }
    policy: MEowPolicy

    def __init__(
        self,
        policy: str | type[MEowPolicy],
        env,
        learning_rate: float | Schedule = 1e-3,
        buffer_size: int = 1_000_000,
        learning_starts: int = 5000,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        ent_coef: str | float = 0.2,
        target_entropy: str | float = "auto",
        max_grad_norm: float = 30.0,
        replay_buffer_class=None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise=None,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            supported_action_spaces=(spaces.Box,),
            support_multi_env=True,
            sde_support=False,
        )
        self.ent_coef = ent_coef
        self.target_entropy = target_entropy
        self.max_grad_norm = max_grad_norm
        self.alpha_optimizer: torch.optim.Optimizer | None = None
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.target_entropy == "auto":
            self.target_entropy = -float(np.prod(self.action_space.shape))
        self.target_entropy = float(self.target_entropy)
        tuned = isinstance(self.ent_coef, str) and self.ent_coef.startswith("auto")
        if tuned:
            initial = float(self.ent_coef.split("_")[1]) if "_" in self.ent_coef else 0.2
        else:
            initial = float(self.ent_coef)
        if initial <= 0:
            raise ValueError(f"MEow ent_coef (alpha) must be positive, got {self.ent_coef!r}")
        self.policy.log_alpha.fill_(math.log(initial))
        if tuned:
            self.policy.log_alpha.requires_grad_(True)
            self.alpha_optimizer = torch.optim.Adam([self.policy.log_alpha], lr=self.lr_schedule(1))

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        optimizers = [self.policy.optimizer]
        if self.alpha_optimizer is not None:
            optimizers.append(self.alpha_optimizer)
        self._update_learning_rate(optimizers)
        losses, alpha_losses = [], []
        for _ in range(gradient_steps):
            batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            discounts = batch.discounts if batch.discounts is not None else self.gamma
            with torch.no_grad():
                next_v = self.policy.value(batch.next_observations, self.policy.flow_target)
                next_v = next_v.min(dim=1, keepdim=True).values
                target = batch.rewards + (1 - batch.dones) * discounts * next_v
            q, _ = self.policy.q_and_v(batch.observations, batch.actions)
            loss = F.mse_loss(q, target.expand_as(q)) * q.shape[1]
            self.policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.flow.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
            losses.append(loss.item())

            if self.alpha_optimizer is not None:
                with torch.no_grad():
                    _, log_prob = self.policy.action_log_prob(batch.observations)
                alpha_loss = -(self.policy.log_alpha * (log_prob + self.target_entropy)).mean()
                self.alpha_optimizer.zero_grad()
                alpha_loss.backward()
                self.alpha_optimizer.step()
                alpha_losses.append(alpha_loss.item())

            polyak_update(
                self.policy.flow.parameters(), self.policy.flow_target.parameters(), self.tau
            )
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/soft_bellman_loss", float(np.mean(losses)))
        self.logger.record("train/alpha", self.policy.alpha.item())
        if alpha_losses:
            self.logger.record("train/alpha_loss", float(np.mean(alpha_losses)))

    def learn(self, total_timesteps: int, callback=None, log_interval: int = 4, tb_log_name: str = "MEow", reset_num_timesteps: bool = True, progress_bar: bool = False):  # fmt: skip
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "policy.optimizer"]
        if self.alpha_optimizer is not None:
            state_dicts.append("alpha_optimizer")
        return state_dicts, []


class MEowAgent(SB3AgentMixin, MEow):
    """MEow with DriveEnv's defaults (``driveenv train meow``)."""

    # alpha 0.05, not the paper's 0.2: the goal task pays ~0.1 per step, so with alpha 0.2 the
    # entropy bonus of merely staying on the road outweighs reaching the goal and the policy
    # dawdles until timeout (benchmarks/RESULTS.md, agent_success).
    default_hyperparameters: ClassVar[dict[str, Any]] = dict(
        learning_rate=1e-3, learning_starts=1000, batch_size=256, ent_coef=0.05
    )
