"""Seeded evaluation in a batched vector env, shared by the benchmarks that score agents.

Episode k runs with seed ``first_seed + k`` whatever the policy does or which sub-environment
it lands in, so every row of a benchmark faces the same tasks. Each sub-environment is reset
with the next episode's seed as soon as it finishes (``reset_mask``), so a camera renders
``envs`` views per call instead of one. Why not ``eval.campaign``: the benchmarks need the
final step's whole ``info`` (lane metrics, returns, step counts) in memory, not records on disk.

The policies here follow one small protocol: ``begin(slot, seed)`` when an episode starts in a
sub-environment, ``act(observations)`` for the whole batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class EpisodeEnd:
    """What a benchmark keeps of one finished episode: its final ``info`` and its return."""

    info: dict
    episode_return: float


@dataclass
class SeededRun:
    """Every episode's end (index k = seed ``first_seed + k``), the steps run and the wall time."""

    episodes: list[EpisodeEnd]
    steps: int
    wall_s: float


class AgentPolicy:
    """A trained agent, deterministic; optionally sees a constant grey image instead of the camera."""

    def __init__(self, agent, blank_images: bool = False) -> None:
        self.agent = agent
        self.blank_images = blank_images

    def begin(self, slot: int, seed: int) -> None:
        pass

    def act(self, observations: dict) -> np.ndarray:
        if self.blank_images:
            observations = {
                key: np.full_like(value, 128) if key == "rgb" else value
                for key, value in observations.items()
            }
        return self.agent.predict(observations, deterministic=True)[0]


class RandomPolicy:
    """Uniform actions in [-1, 1]^2, seeded per episode (so episode k is the same in every run)."""

    def __init__(self, num_envs: int) -> None:
        self.rngs = [np.random.default_rng(0) for _ in range(num_envs)]

    def begin(self, slot: int, seed: int) -> None:
        self.rngs[slot] = np.random.default_rng(seed)

    def act(self, observations: dict) -> np.ndarray:
        return np.stack([rng.uniform(-1, 1, 2) for rng in self.rngs]).astype(np.float32)


class ExpertPolicy:
    """The privileged scripted expert (agents.experts), one per sub-environment."""

    def __init__(self, vec) -> None:
        from agents.experts import make_expert

        self.experts = [make_expert(env) for env in vec.envs]

    def begin(self, slot: int, seed: int) -> None:
        pass

    def act(self, observations: dict) -> np.ndarray:
        return np.stack([expert.predict(None)[0] for expert in self.experts]).astype(np.float32)


def _slot_info(infos: dict, slot: int) -> dict:
    """Sub-environment ``slot``'s entries of a vector env's batched ``info``."""
    return {key: value[slot] for key, value in infos.items() if not key.startswith("_")}


def run_seeded_episodes(make_policy, env_config, episodes: int, first_seed: int, envs: int = 8):
    """Run ``episodes`` episodes of ``make_policy(vec)``; returns a ``SeededRun``."""
    from simulator import make_vec

    vec = make_vec(env_config, min(envs, episodes))
    start = time.perf_counter()
    ends: dict[int, EpisodeEnd] = {}
    steps = 0
    try:
        policy, n = make_policy(vec), vec.num_envs
        slot_episode: list[int | None] = list(range(n))
        for slot in range(n):
            policy.begin(slot, first_seed + slot)
        observations, _ = vec.reset(seed=[first_seed + slot for slot in range(n)])
        returns = np.zeros(n)
        next_episode = n
        while len(ends) < episodes:
            observations, rewards, terminated, truncated, infos = vec.step(policy.act(observations))
            steps += sum(episode is not None for episode in slot_episode)
            returns += rewards
            done = np.flatnonzero(terminated | truncated)
            if not len(done):
                continue
            seeds: list[int | None] = [None] * n
            for slot in done:
                if slot_episode[slot] is not None:
                    ends[slot_episode[slot]] = EpisodeEnd(_slot_info(infos, slot), returns[slot])
                returns[slot] = 0.0
                slot_episode[slot] = next_episode if next_episode < episodes else None
                if slot_episode[slot] is not None:
                    seeds[slot] = first_seed + next_episode
                    policy.begin(int(slot), seeds[slot])
                    next_episode += 1
            mask = np.zeros(n, dtype=bool)
            mask[done] = True
            observations, _ = vec.reset(seed=seeds, options={"reset_mask": mask})
    finally:
        vec.close()
    ordered = [ends[k] for k in range(episodes)]
    return SeededRun(ordered, steps, time.perf_counter() - start)


def success_summary(run: SeededRun) -> dict:
    """Success rate with its 95% Wilson interval over a run's episodes."""
    from eval.metrics import wilson_interval

    episodes = len(run.episodes)
    successes = int(sum(bool(end.info["success"]) for end in run.episodes))
    low, high = wilson_interval(successes, episodes)
    return {
        "success_rate": successes / episodes,
        "episodes": episodes,
        "ci_low": low,
        "ci_high": high,
    }
