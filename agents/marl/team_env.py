"""The team view of a multi-agent environment that the value-based learners train on.

A ``TeamEnv`` has a fixed number of agents, flat float observations (N, O), a global state (S,),
the available actions (N, A), one team reward per step and one end of episode for the team.
``ParallelTeamEnv`` adapts any PettingZoo ``ParallelEnv`` with discrete actions to it
(``simulator.make_multi``'s robots and MPE's ``simple_spread``): an agent that has left the
episode observes zeros and may only take action 0 (stop, or MPE's no-op), as in PyMARL; the
team reward is the sum of the agents' rewards; the team's episode is over when no agent is left,
and it counts as terminated (no bootstrap) unless some agent was cut off by the time limit.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from gymnasium import spaces

from agents.errors import AgentError


class TeamEnv(Protocol):
    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int
    max_steps: int

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def step(self, actions: np.ndarray) -> tuple: ...


def flat_observation_size(space: spaces.Space) -> int:
    """Length of the flat float vector of an observation (a Box, or a Dict of 1-D Boxes)."""
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return int(space.shape[0])
    if isinstance(space, spaces.Dict):
        for key, part in space.spaces.items():
            if not isinstance(part, spaces.Box) or len(part.shape) != 1:
                raise AgentError(
                    f"observation {key!r} {part}: the multi-agent learners take vector "
                    "observations (obs=state or state+scan)"
                )
        return sum(int(part.shape[0]) for part in space.spaces.values())
    raise AgentError(f"observation space {space}: the multi-agent learners take vectors")


def flatten_observation(obs: Any) -> np.ndarray:
    if isinstance(obs, dict):
        return np.concatenate([np.asarray(obs[key], np.float32).ravel() for key in sorted(obs)])
    return np.asarray(obs, dtype=np.float32).ravel()


class ParallelTeamEnv:
    """A ``TeamEnv`` over a PettingZoo ``ParallelEnv`` with ``Discrete`` action spaces."""

    def __init__(self, env, max_steps: int) -> None:
        self.env = env
        self.agents = list(env.possible_agents)
        self.n_agents = len(self.agents)
        first = self.agents[0]
        action_space = env.action_space(first)
        if not isinstance(action_space, spaces.Discrete):
            raise AgentError(f"action space {action_space}: the value-based learners need Discrete")
        self.n_actions = int(action_space.n)
        self.obs_dim = flat_observation_size(env.observation_space(first))
        self._has_state = hasattr(env, "state_space")
        self.state_dim = (
            int(np.prod(env.state_space.shape)) if self._has_state else self.n_agents * self.obs_dim
        )
        self.max_steps = int(max_steps)
        self._obs = np.zeros((self.n_agents, self.obs_dim), np.float32)

    def _team_arrays(self, observations: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._obs = np.zeros((self.n_agents, self.obs_dim), np.float32)
        avail = np.zeros((self.n_agents, self.n_actions), np.float32)
        avail[:, 0] = 1.0
        live = set(self.env.agents)
        for i, agent in enumerate(self.agents):
            if agent in live and agent in observations:
                self._obs[i] = flatten_observation(observations[agent])
                avail[i] = 1.0
        state = (
            np.asarray(self.env.state(), np.float32).ravel()
            if self._has_state
            else self._obs.ravel()
        )
        return self._obs.copy(), state, avail

    def reset(self, seed: int | None = None):
        observations, _ = self.env.reset(seed=seed)
        return self._team_arrays(observations)

    def step(self, actions: np.ndarray):
        """(obs, state, avail, team reward, terminated, truncated, info) after one joint step."""
        live = list(self.env.agents)
        joint = {a: int(actions[self.agents.index(a)]) for a in live}
        observations, rewards, terminations, truncations, infos = self.env.step(joint)
        obs, state, avail = self._team_arrays(observations)
        reward = float(sum(rewards.values()))
        over = not self.env.agents
        truncated = over and any(truncations.get(a, False) for a in live)
        info = dict(getattr(self.env, "episode_stats", {}))
        return obs, state, avail, reward, over and not truncated, truncated, info

    def close(self) -> None:
        self.env.close()
