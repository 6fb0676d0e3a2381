"""The vector env: batched rendering equals per-env rendering; autoreset; gymnasium and SB3 use."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from simulator import EnvConfig, make_env, make_vec
from simulator.sensors import STATE_FIELDS
from simulator.world import OPEN_CLIENTS


def _config(scene, **overrides):
    options = dict(scene=scene, obs="rgb+depth+state", image_size=16, lighting="random")
    options.update(overrides)
    return EnvConfig(**options)


def test_batched_observations_equal_single_env_observations(synthetic_scene):
    config = _config(synthetic_scene)
    vec = make_vec(config, 3)
    singles = [make_env(config) for _ in range(3)]
    try:
        batch, _ = vec.reset(seed=10)
        singles_obs = [env.reset(seed=10 + i)[0] for i, env in enumerate(singles)]
        rng = np.random.default_rng(0)
        for _ in range(6):
            for i, single in enumerate(singles_obs):
                for key in batch:
                    np.testing.assert_allclose(batch[key][i], single[key], atol=1e-5)
            actions = rng.uniform(-1, 1, size=(3, 2)).astype(np.float32)
            batch, _, terminated, truncated, _ = vec.step(actions)
            assert not (terminated | truncated).any()
            singles_obs = [env.step(actions[i])[0] for i, env in enumerate(singles)]
        assert not np.array_equal(batch["rgb"][0], batch["rgb"][1])  # envs differ
    finally:
        vec.close()
        for env in singles:
            env.close()


def _crash_options(vec):
    """Reset options that put every env 3 cm from the table's +y edge, facing it."""
    low, high = vec.envs[0].scene.drivable.drivable_bounds()
    return {"spawn": (0.0, high[1] - 0.03, np.pi / 2), "goal": (0.0, 0.0)}


def test_next_step_autoreset(synthetic_scene):
    vec = make_vec(_config(synthetic_scene, obs="state"), 2)
    try:
        vec.reset(seed=0, options=_crash_options(vec))
        ahead = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
        for _ in range(20):
            _, rewards, terminated, truncated, infos = vec.step(ahead)
            if terminated.any():
                break
        assert terminated.all() and infos["off_road"].all()
        observation, rewards, terminated, truncated, infos = vec.step(ahead)
        assert not terminated.any() and (rewards == 0).all()  # this step was the reset
        assert np.allclose(observation["state"][:, 12], 0.0)  # a fresh episode's completion
    finally:
        vec.close()


def test_same_step_autoreset_reports_final_observation(synthetic_scene):
    vec = make_vec(_config(synthetic_scene), 2, autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        vec.reset(seed=0, options=_crash_options(vec))
        for _ in range(20):
            observation, _, terminated, _, infos = vec.step(np.tile([0.0, 1.0], (2, 1)))
            if terminated.any():
                break
        assert infos["_final_obs"].all()
        final = infos["final_obs"][0]
        assert final["rgb"].shape == (16, 16, 3) and infos["final_info"][0]["off_road"]
        assert not np.array_equal(final["state"], observation["state"][0])  # new episode
    finally:
        vec.close()


def test_gymnasium_vector_wrappers_work(synthetic_scene):
    from gymnasium.wrappers.vector import RecordEpisodeStatistics

    vec = RecordEpisodeStatistics(make_vec(_config(synthetic_scene, obs="state"), 2))
    try:
        vec.reset(seed=0, options=_crash_options(vec.unwrapped))
        episodes = 0
        for _ in range(30):
            _, _, _, _, infos = vec.step(np.tile([0.0, 1.0], (2, 1)))
            if "episode" in infos:
                episodes += int(infos["_episode"].sum())
        assert episodes >= 2
    finally:
        vec.close()


def test_gymnasium_make_vec_runs_envs_in_subprocesses(synthetic_scene):
    import gymnasium

    vec = gymnasium.make_vec(
        "driveenv/Drive-v0",
        num_envs=2,
        vectorization_mode="async",
        scene=str(synthetic_scene),
        obs="rgb+state",
        image_size=16,
    )
    try:
        observation, infos = vec.reset(seed=0)
        assert observation["rgb"].shape == (2, 16, 16, 3)
        _, _, _, _, infos = vec.step(np.zeros((2, 2), np.float32))
        assert infos["pose"].shape == (2, 3)
    finally:
        vec.close()


def test_stable_baselines3_trains_on_the_batched_env(synthetic_scene, tmp_path):
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import configure

    from simulator.sb3 import make_sb3_vec

    before = set(OPEN_CLIENTS)
    # SB3's default image encoder (NatureCNN) needs at least 36 x 36 pixels
    config = _config(synthetic_scene, obs="rgb+state", max_episode_steps=8, image_size=36)
    venv = make_sb3_vec(config, 2)
    try:
        observation = venv.reset()
        assert observation["rgb"].shape == (2, 36, 36, 3)
        for _ in range(8):
            observation, rewards, dones, infos = venv.step(np.zeros((2, 2), np.float32))
        assert dones.all()  # every env timed out at step 8
        assert all(info["TimeLimit.truncated"] for info in infos)
        assert infos[0]["terminal_observation"]["state"].shape == (len(STATE_FIELDS),)
        model = PPO("MultiInputPolicy", venv, n_steps=8, batch_size=16, n_epochs=1, seed=0)
        model.set_logger(configure(str(tmp_path), []))  # no log folder left in /tmp
        model.learn(16)
    finally:
        venv.close()
    assert before == OPEN_CLIENTS


def test_bad_vector_arguments(synthetic_scene):
    from simulator.errors import ActionError, ConfigError

    with pytest.raises(ConfigError, match="num_envs"):
        make_vec(_config(synthetic_scene), 0)
    vec = make_vec(_config(synthetic_scene, obs="state"), 2)
    try:
        vec.reset(seed=0)
        with pytest.raises(ActionError, match="shape"):
            vec.step(np.zeros((3, 2)))
        poses = [env.privileged_state()["pose"] for env in vec.envs]
        with pytest.raises(ActionError, match="NaN"):
            vec.step(np.array([[1.0, 1.0], [np.nan, 0.0]]))
        for env, pose in zip(vec.envs, poses, strict=True):  # no env moved
            np.testing.assert_array_equal(env.privileged_state()["pose"], pose)
    finally:
        vec.close()
