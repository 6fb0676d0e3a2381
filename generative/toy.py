"""Toy data with closed-form truths, for checking the generative library against exact answers.

``GaussianMixture`` is an isotropic Gaussian mixture whose density, score, class posterior and
class-conditional score are all known in closed form, and stay known after the two operations
diffusion applies to data: scaling by sqrt(alpha_bar) and convolving with Gaussian noise.
That makes it the oracle for every test in ``generative``: a trained score is compared with
``mixture.convolved(sigma).score(x)``, a diffusion sampler with the oracle noise prediction
``oracle_epsilon`` must reproduce the mixture's mode weights, and so on.

``DetourEnv`` is the 2-D multimodal imitation toy: a point robot drives from the left to a goal
on the right around a round obstacle in the middle; the expert goes over the top or under the
bottom with equal probability, both equally good. A policy that averages the two modes (a
Gaussian regression) drives into the obstacle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

from generative.errors import GenerativeError


class GaussianMixture:
    """Mixture of isotropic Gaussians N(means[k], stds[k]^2 I) with weights; classes group components.

    ``classes[k]`` is the class label of component k (default: each component its own class).
    """

    def __init__(
        self,
        means: torch.Tensor,
        stds: torch.Tensor,
        weights: torch.Tensor | None = None,
        classes: torch.Tensor | None = None,
    ) -> None:
        self.means = torch.as_tensor(means, dtype=torch.float32)
        if self.means.ndim != 2:
            raise GenerativeError(f"means must be (K, D), got shape {tuple(self.means.shape)}")
        k = self.means.shape[0]
        self.stds = torch.as_tensor(stds, dtype=torch.float32).expand(k).clone()
        if weights is None:
            weights = torch.full((k,), 1.0 / k)
        weights = torch.as_tensor(weights, dtype=torch.float32)
        if weights.shape != (k,) or (weights < 0).any():
            raise GenerativeError(
                f"weights must be {k} non-negative numbers, got {weights.tolist()}"
            )
        self.weights = weights / weights.sum()
        self.classes = (
            torch.arange(k) if classes is None else torch.as_tensor(classes, dtype=torch.long)
        )
        self.num_classes = int(self.classes.max()) + 1

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` points and their component indices."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator)
        return self.means[comp] + self.stds[comp, None] * noise, comp

    def _component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K): log w_k + log N(x; mu_k, s_k^2 I)."""
        diff = x[:, None, :] - self.means[None]
        var = self.stds**2
        log_norm = -0.5 * self.dim * torch.log(2 * math.pi * var)
        return torch.log(self.weights) + log_norm - 0.5 * (diff**2).sum(-1) / var

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._component_log_probs(x), dim=1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K) posterior over components."""
        return torch.softmax(self._component_log_probs(x), dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """grad_x log p(x), exact."""
        resp = self.responsibilities(x)
        per_comp = -(x[:, None, :] - self.means[None]) / (self.stds**2)[None, :, None]
        return (resp[..., None] * per_comp).sum(1)

    def class_log_posterior(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) log p(y | x)."""
        comp = self._component_log_probs(x)
        total = torch.logsumexp(comp, dim=1, keepdim=True)
        out = torch.full((x.shape[0], self.num_classes), -torch.inf)
        for c in range(self.num_classes):
            out[:, c] = torch.logsumexp(comp[:, self.classes == c], dim=1)
        return out - total

    def conditional_score(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """grad_x log p(x | y), exact, for labels ``y`` (N,)."""
        comp = self._component_log_probs(x)
        in_class = self.classes[None, :] == y[:, None]
        comp = torch.where(in_class, comp, torch.full_like(comp, -torch.inf))
        resp = torch.softmax(comp, dim=1)
        per_comp = -(x[:, None, :] - self.means[None]) / (self.stds**2)[None, :, None]
        return (resp[..., None] * per_comp).sum(1)

    def convolved(self, sigma: float) -> GaussianMixture:
        """The density of x + sigma * z (Gaussian noise added)."""
        return GaussianMixture(
            self.means, torch.sqrt(self.stds**2 + sigma**2), self.weights, self.classes
        )

    def diffused(self, alpha_bar: float) -> GaussianMixture:
        """The density of sqrt(alpha_bar) x + sqrt(1 - alpha_bar) z (the DDPM forward marginal)."""
        scale = math.sqrt(alpha_bar)
        stds = torch.sqrt(alpha_bar * self.stds**2 + (1 - alpha_bar))
        return GaussianMixture(self.means * scale, stds, self.weights, self.classes)


def ring_mixture(
    num_modes: int = 4, radius: float = 2.0, std: float = 0.3, num_classes: int = 2
) -> GaussianMixture:
    """Modes evenly spaced on a circle; classes alternate around it."""
    angles = torch.arange(num_modes) * (2 * math.pi / num_modes)
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture(means, torch.tensor(std), classes=torch.arange(num_modes) % num_classes)


def oracle_epsilon(mixture: GaussianMixture, alpha_bars: torch.Tensor):
    """The exact noise prediction E[eps | x_t] for data from ``mixture`` under a DDPM schedule.

    eps*(x_t, t) = -sqrt(1 - alpha_bar_t) * grad log p_t(x_t); returns a denoiser with the
    ``model(x_t, t, cond)`` signature used by ``generative.diffusion``.
    """

    def model(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        out = torch.empty_like(x)
        for step in torch.unique(t):
            rows = t == step
            ab = float(alpha_bars[step])
            out[rows] = -math.sqrt(1 - ab) * mixture.diffused(ab).score(x[rows])
        return out

    return model


# ----------------------------------------------------------------------------------------------
# The multimodal imitation toy


@dataclass
class ToyTrajectory:
    """One demonstration; the same fields as ``agents.demos.Trajectory``."""

    observations: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    success: bool
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DetourConfig:
    start: tuple[float, float] = (-1.0, 0.0)
    goal: tuple[float, float] = (1.0, 0.0)
    obstacle_radius: float = 0.35
    goal_radius: float = 0.15
    max_step: float = 0.1
    start_noise: float = 0.05
    max_episode_steps: int = 50
    detour_height: float = 0.6


class DetourEnv(gym.Env):
    """Point robot from ``start`` to ``goal`` around a disc obstacle at the origin.

    Observation: {"state": (x, y)}; action: velocity in [-1, 1]^2 times ``max_step`` per step.
    ``info["mode"]`` at the end says how the robot passed the obstacle: "upper", "lower",
    "collision" (touched the disc) or "none" (never reached the obstacle's x).
    """

    metadata = {"render_modes": []}

    def __init__(self, config: DetourConfig | None = None) -> None:
        self.config = config or DetourConfig()
        self.observation_space = gym.spaces.Dict(
            {"state": gym.spaces.Box(-3.0, 3.0, shape=(2,), dtype=np.float32)}
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._pos = np.zeros(2)
        self._steps = 0
        self._mode = "none"

    def _obs(self) -> dict[str, np.ndarray]:
        return {"state": self._pos.astype(np.float32)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        noise = self.np_random.normal(0.0, self.config.start_noise, size=2)
        self._pos = np.asarray(self.config.start, dtype=np.float64) + noise
        self._steps = 0
        self._mode = "none"
        return self._obs(), {"mode": self._mode}

    def step(self, action):
        cfg = self.config
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        previous = self._pos.copy()
        self._pos = self._pos + cfg.max_step * action
        self._steps += 1
        collided = _segment_hits_disc(previous, self._pos, cfg.obstacle_radius)
        if collided:
            self._mode = "collision"
        elif self._mode == "none" and previous[0] < 0.0 <= self._pos[0]:
            self._mode = "upper" if self._pos[1] > 0 else "lower"
        reached = bool(np.linalg.norm(self._pos - np.asarray(cfg.goal)) < cfg.goal_radius)
        terminated = collided or reached
        truncated = self._steps >= cfg.max_episode_steps
        reward = 1.0 if reached and not collided else (-1.0 if collided else 0.0)
        info = {"mode": self._mode, "success": reached and not collided, "collision": collided}
        return self._obs(), reward, terminated, truncated, info


def detour_chunk_sides(
    chunks: np.ndarray, config: DetourConfig | None = None, margin: float = 0.05
) -> tuple[float, float]:
    """Shares of action chunks (N, H, 2) from ``config.start`` that end above / below the axis.

    A chunk ends more than ``margin`` above or below the start-goal line, or on it (neither
    share): the measure of whether a policy's first plan takes one detour, the other, or aims
    at the obstacle.
    """
    config = config or DetourConfig()
    end_y = config.start[1] + config.max_step * np.asarray(chunks)[:, :, 1].sum(1)
    return float((end_y > margin).mean()), float((end_y < -margin).mean())


def _segment_hits_disc(a: np.ndarray, b: np.ndarray, radius: float) -> bool:
    """Whether the segment a->b passes within ``radius`` of the origin."""
    ab = b - a
    denom = float(ab @ ab)
    s = 0.0 if denom == 0 else float(np.clip(-(a @ ab) / denom, 0.0, 1.0))
    return bool(np.linalg.norm(a + s * ab) < radius)


def detour_expert_action(
    position: np.ndarray, upper: bool, config: DetourConfig, rng: np.random.Generator
) -> np.ndarray:
    """Head for the waypoint above (or below) the obstacle, then for the goal; a little noise."""
    waypoint = np.array([0.0, config.detour_height if upper else -config.detour_height])
    target = waypoint if position[0] < -0.05 else np.asarray(config.goal)
    delta = target - position
    action = delta / max(np.linalg.norm(delta), 1e-9)
    action = action * min(1.0, np.linalg.norm(delta) / config.max_step)
    return np.clip(action + rng.normal(0.0, 0.05, size=2), -1.0, 1.0).astype(np.float32)


def detour_demos(
    num_episodes: int, seed: int = 0, config: DetourConfig | None = None
) -> list[ToyTrajectory]:
    """Expert demonstrations: half go over the obstacle, half under (alternating)."""
    env = DetourEnv(config)
    rng = np.random.default_rng(seed)
    demos = []
    for episode in range(num_episodes):
        obs, _ = env.reset(seed=seed * 100_003 + episode)
        upper = episode % 2 == 0
        states, actions, rewards = [obs["state"]], [], []
        done = False
        info = {}
        while not done:
            action = detour_expert_action(obs["state"].astype(np.float64), upper, env.config, rng)
            obs, reward, terminated, truncated, info = env.step(action)
            states.append(obs["state"])
            actions.append(action)
            rewards.append(reward)
            done = terminated or truncated
        demos.append(
            ToyTrajectory(
                observations={"state": np.stack(states)},
                actions=np.stack(actions),
                rewards=np.asarray(rewards, dtype=np.float32),
                success=bool(info.get("success", False)),
                info={"mode": info.get("mode")},
            )
        )
    return demos
