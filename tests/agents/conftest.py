"""Fixtures of the agents tests: the synthetic scene bundle and a small set of expert demos."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_scene(tmp_path_factory) -> Path:
    """The synthetic table-top bundle (plate with cliffs, boxes, no field)."""
    from scene_builder.synthetic import make_synthetic_scene

    return make_synthetic_scene(tmp_path_factory.mktemp("agent-scenes") / "synthetic", seed=0)


@pytest.fixture(scope="session")
def state_env_config(synthetic_scene):
    from simulator import EnvConfig

    return EnvConfig(scene=synthetic_scene, obs="state", spawn="random", max_episode_steps=200)


@pytest.fixture(scope="session")
def expert_demos(tmp_path_factory, state_env_config):
    """20 expert episodes with state observations, saved and loaded back."""
    from agents.demos import load_demos, record_episode, save_demos
    from agents.experts import make_expert
    from simulator import make_env

    env = make_env(state_env_config)
    expert = make_expert(env)
    trajectories = [record_episode(env, expert, seed=seed) for seed in range(20)]
    env.close()
    path = tmp_path_factory.mktemp("demos") / "demos.npz"
    save_demos(path, trajectories, {"env_config": state_env_config.to_dict()})
    return path, load_demos(path)
