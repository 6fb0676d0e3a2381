"""The multi-agent learners as agents: ``create``, ``learn``, ``predict``, ``save``, ``load``.

``IQLAgent``, ``VDNAgent``, ``QMIXAgent``, ``DDNAgent`` and ``DMIXAgent`` differ only in their
mixer (``agents.marl.mixers``); all share the utility network across agents, replay whole
episodes, train centrally (the mixer sees the global state) and act per agent on each agent's
own observation history. ``learn`` collects episodes epsilon-greedily and, after each, takes
one gradient step per ``train_every`` environment steps it lasted. The checkpoint (``agent.pt``) is a dict of
plain values and state dicts, read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from agents.errors import AgentError, CheckpointError
from agents.marl import MARL_ALGORITHMS
from agents.marl.buffer import EpisodeBuffer
from agents.marl.learner import Learner, MARLConfig
from agents.marl.team_env import ParallelTeamEnv, flatten_observation

SIZES = ("n_agents", "obs_dim", "state_dim", "n_actions", "max_steps")


def team_env_of(env):
    """``env`` as a ``TeamEnv`` (a PettingZoo ParallelEnv is adapted; a TeamEnv is kept)."""
    if env is None or hasattr(env, "n_agents"):
        return env
    config = getattr(env, "config", None)
    max_steps = getattr(config, "max_episode_steps", None) or getattr(env, "max_cycles", 100)
    return ParallelTeamEnv(env, max_steps)


class MARLAgent:
    """Base of the five learners; subclasses set ``algorithm`` and ``mixer``."""

    algorithm: ClassVar[str] = ""
    mixer: ClassVar[str] = ""
    whole_episodes: ClassVar[bool] = True  # learn(n) ends with an episode, n steps or more

    def __init__(self, sizes: dict[str, int], config: MARLConfig, seed: int = 0, env=None):
        self.sizes, self.config, self.seed = dict(sizes), config, int(seed)
        self.env = team_env_of(env)
        torch.manual_seed(self.seed)
        self.rng = np.random.default_rng(self.seed)
        n, o, s, a = (sizes[k] for k in ("n_agents", "obs_dim", "state_dim", "n_actions"))
        self.learner = Learner(self.mixer, n, o, s, a, config)
        self.buffer: EpisodeBuffer | None = None
        self.num_timesteps = 0
        self.episodes = 0
        self.losses: list[float] = []
        self._owed_updates = 0.0
        self.reset()

    @classmethod
    def create(cls, env, seed: int = 0, tensorboard_log: str | None = None, **hyperparameters):
        """A fresh learner for ``env`` (a ``TeamEnv`` or a discrete PettingZoo ParallelEnv)."""
        known = {f.name for f in fields(MARLConfig)}
        unknown = sorted(set(hyperparameters) - known)
        if unknown:
            raise AgentError(f"unknown {cls.algorithm} hyper-parameter(s): {', '.join(unknown)}")
        team = team_env_of(env)
        sizes = {name: int(getattr(team, name)) for name in SIZES}
        return cls(sizes, MARLConfig(**hyperparameters), seed, team)

    # ----------------------------------------------------------------- acting
    def reset(self) -> None:
        """Start a new episode: no previous actions, empty recurrent state."""
        self._last = np.full(self.sizes["n_agents"], -1, dtype=np.int64)
        self._hidden = None

    def act(self, obs, avail, epsilon: float = 0.0) -> np.ndarray:
        actions, self._hidden = self.learner.act(
            np.asarray(obs, np.float32), self._last, avail, self._hidden, epsilon, self.rng
        )
        self._last = actions.astype(np.int64)
        return actions

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Greedy actions: ``{agent: obs}`` -> ``{agent: action}`` (agents absent are idle),
        or an (N, O) array -> (N,) actions."""
        n = self.sizes["n_agents"]
        if isinstance(observation, dict):
            names = sorted(observation, key=_agent_order)
            obs = np.zeros((n, self.sizes["obs_dim"]), np.float32)
            avail = np.zeros((n, self.sizes["n_actions"]), np.float32)
            avail[:, 0] = 1.0
            for name in names:
                i = _agent_order(name)
                obs[i], avail[i] = flatten_observation(observation[name]), 1.0
            actions = self.act(obs, avail, 0.0 if deterministic else self.epsilon)
            return {name: int(actions[_agent_order(name)]) for name in names}, None
        avail = np.ones((n, self.sizes["n_actions"]), np.float32)
        return self.act(observation, avail, 0.0 if deterministic else self.epsilon), None

    @property
    def epsilon(self) -> float:
        cfg = self.config
        fraction = min(1.0, self.num_timesteps / max(1, cfg.epsilon_steps))
        return cfg.epsilon_start + fraction * (cfg.epsilon_end - cfg.epsilon_start)

    # ----------------------------------------------------------------- learning
    def run_episode(self, env, epsilon: float, seed: int | None = None) -> dict[str, Any]:
        """One episode of ``env`` (a TeamEnv); returns its arrays, return and last info."""
        obs, state, avail = env.reset(seed=seed)
        self.reset()
        record = {"obs": [obs], "state": [state], "avail": [avail], "actions": [], "reward": []}
        terminated, info, total = False, {}, 0.0
        for _ in range(env.max_steps):
            actions = self.act(obs, avail, epsilon)
            obs, state, avail, reward, terminated, truncated, info = env.step(actions)
            for name, value in (("obs", obs), ("state", state), ("avail", avail)):
                record[name].append(value)
            record["actions"].append(actions)
            record["reward"].append(reward)
            total += reward
            if terminated or truncated:
                break
        arrays = {name: np.asarray(values) for name, values in record.items()}
        arrays["terminated"] = np.zeros(len(arrays["reward"]), np.float32)
        arrays["terminated"][-1] = float(terminated)
        return {"arrays": arrays, "return": total, "info": info, "steps": len(arrays["reward"])}

    def learn(self, total_timesteps: int, callback=None, **_ignored):
        """Collect episodes and learn until ``total_timesteps`` more environment steps are done."""
        if self.env is None:
            raise AgentError(f"{self.algorithm}: learn() needs an environment (create(env))")
        cfg = self.config
        if self.buffer is None:
            self.buffer = EpisodeBuffer(cfg.buffer_episodes, **self._buffer_sizes())
        target = self.num_timesteps + int(total_timesteps)
        while self.num_timesteps < target:
            episode = self.run_episode(self.env, self.epsilon)
            self.buffer.add(episode["arrays"])
            self.num_timesteps += episode["steps"]
            self.episodes += 1
            self._owed_updates += episode["steps"] / cfg.train_every
            while self.buffer.size >= cfg.batch_size and self._owed_updates >= 1.0:
                batch = self.buffer.sample(cfg.batch_size, self.rng)
                self.losses.append(self.learner.update(batch))
                self._owed_updates -= 1.0
            if callback is not None:
                for _ in range(episode["steps"]):
                    callback(self)
        return self

    def _buffer_sizes(self) -> dict[str, int]:
        s = self.sizes
        return {
            "max_steps": s["max_steps"],
            "n_agents": s["n_agents"],
            "obs_dim": s["obs_dim"],
            "state_dim": s["state_dim"],
            "n_actions": s["n_actions"],
        }

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        from common.atomic import atomic_path

        payload = {
            "algorithm": self.algorithm,
            "config": asdict(self.config),
            "sizes": self.sizes,
            "seed": self.seed,
            "network": self.learner.network.state_dict(),
            "mixer": self.learner.mixer.state_dict(),
            "num_timesteps": self.num_timesteps,
            "episodes": self.episodes,
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path, env=None, **_ignored) -> MARLAgent:
        from agents.base import read_torch_checkpoint

        payload = read_torch_checkpoint(path, cls.algorithm)
        if payload.get("algorithm") != cls.algorithm:
            found = payload.get("algorithm")
            raise CheckpointError(f"{path}: a {found!r} checkpoint, not {cls.algorithm!r}")
        try:
            sizes = {name: int(payload["sizes"][name]) for name in SIZES}
            agent = cls(sizes, MARLConfig(**payload["config"]), int(payload["seed"]), env)
            agent.learner.network.load_state_dict(payload["network"])
            agent.learner.mixer.load_state_dict(payload["mixer"])
            agent.num_timesteps = int(payload["num_timesteps"])
            agent.episodes = int(payload["episodes"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            raise CheckpointError(
                f"{path}: not a readable {cls.algorithm} checkpoint ({reason})"
            ) from None
        agent.learner.sync_targets()
        if agent.env is not None:
            _check_sizes(path, agent)
        return agent


class TeamDriver:
    """``observations -> actions`` of a trained team, for videos (``reset`` per episode)."""

    def __init__(self, agent: MARLAgent) -> None:
        self.agent = agent

    def reset(self) -> None:
        self.agent.reset()

    def __call__(self, observations):
        return self.agent.predict(observations)[0]


def team_driver(run_dir):
    """The team of a ``driveenv train iql|vdn|qmix|ddn|dmix`` run and its environment config."""
    from agents import load_agent
    from agents.train import read_run
    from simulator.config import EnvConfig

    run = read_run(run_dir)
    if run["algorithm"] not in MARL_ALGORITHMS:
        raise AgentError(f"{run_dir}: a {run['algorithm']} run, not a multi-agent team")
    return TeamDriver(load_agent(run_dir)), EnvConfig.from_dict(run["env_config"])


def _check_sizes(path, agent: MARLAgent) -> None:
    for name in ("n_agents", "obs_dim", "n_actions"):
        if int(getattr(agent.env, name)) != agent.sizes[name]:
            raise CheckpointError(
                f"{path}: trained with {name}={agent.sizes[name]}, "
                f"the environment has {getattr(agent.env, name)}"
            )


def _agent_order(name: str) -> int:
    """The index of a PettingZoo agent name such as ``robot_1`` or ``agent_1``."""
    try:
        return int(str(name).rsplit("_", 1)[-1])
    except ValueError:
        raise AgentError(f"agent name {name!r} has no index (name_INDEX)") from None


class IQLAgent(MARLAgent):
    """Independent Q-learning (Tan 1993) with parameter sharing: no mixer."""

    algorithm, mixer = "iql", "none"


class VDNAgent(MARLAgent):
    """VDN (Sunehag et al. 2018): Q_tot = sum of Q_i."""

    algorithm, mixer = "vdn", "vdn"


class QMIXAgent(MARLAgent):
    """QMIX (Rashid et al. 2018): Q_tot = monotonic mixer(Q_1..Q_N, s)."""

    algorithm, mixer = "qmix", "qmix"


class DDNAgent(MARLAgent):
    """DFAC's DDN: VDN's sum for the mean, the sum of shapes for the distribution."""

    algorithm, mixer = "ddn", "ddn"


class DMIXAgent(MARLAgent):
    """DFAC's DMIX: QMIX's mixer for the mean, a non-negative mixture of the shapes."""

    algorithm, mixer = "dmix", "dmix"


AGENTS = {cls.algorithm: cls for cls in (IQLAgent, VDNAgent, QMIXAgent, DDNAgent, DMIXAgent)}
