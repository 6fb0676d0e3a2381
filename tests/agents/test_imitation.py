"""Behaviour cloning (state and image) and TDIL's discriminators, on expert demonstrations."""

import numpy as np
import pytest
import torch

from agents.bc import BCAgent
from agents.demos import record_episode
from agents.errors import AgentError, CheckpointError
from agents.experts import make_expert
from simulator import EnvConfig, make_env


def _mse_to_expert(agent, trajectories):
    obs = {"state": np.concatenate([t.observations["state"][:-1] for t in trajectories])}
    actions = np.concatenate([t.actions for t in trajectories])
    predicted, _ = agent.predict(obs)
    return float(np.mean((predicted - actions) ** 2)), float(np.var(actions, axis=0).sum())


def test_bc_fits_the_expert_and_round_trips(tmp_path, state_env_config, expert_demos):
    path, trajectories = expert_demos
    env = make_env(state_env_config)
    agent = BCAgent.create(env, seed=0, demos=path)
    before, variance = _mse_to_expert(agent, trajectories)
    agent.learn(300)
    after, _ = _mse_to_expert(agent, trajectories)
    assert after < 0.5 * before and after < 0.3 * variance
    obs, _ = env.reset(seed=3)
    action, state = agent.predict(obs)
    assert action.shape == (2,) and state is None and np.all(np.abs(action) <= 1)
    agent.save(tmp_path / "bc.pt")
    loaded = BCAgent.load(tmp_path / "bc.pt")
    batch = {"state": trajectories[0].observations["state"]}
    np.testing.assert_array_equal(agent.predict(batch)[0], loaded.predict(batch)[0])
    env.close()


def test_bc_checkpoint_errors(tmp_path):
    bad = tmp_path / "bc.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="bc.pt"):
        BCAgent.load(bad)
    torch.save({"algorithm": "sac"}, bad)
    with pytest.raises(CheckpointError, match="not 'bc'"):
        BCAgent.load(bad)


def test_bc_learns_from_64x64_images(synthetic_scene):
    """The image path: SmallCNN + MLP regress the expert's actions from camera frames."""
    env = make_env(EnvConfig(scene=synthetic_scene, obs="rgb", image_size=64, spawn="random"))
    expert = make_expert(env)
    trajectories = [record_episode(env, expert, seed=s) for s in range(2)]
    agent = BCAgent.create(env, seed=0, demos=trajectories, batch_size=64)
    assert agent.policy.encoder.image_keys == ["rgb"]
    losses = []
    for _ in range(4):
        agent.learn(10)
        losses.append(agent.last_loss)
    assert losses[-1] < losses[0]
    obs, _ = env.reset(seed=5)
    action, _ = agent.predict(obs)
    assert action.shape == (2,)
    env.close()


def test_bc_without_demonstrations_is_an_error(state_env_config):
    env = make_env(state_env_config)
    with pytest.raises(AgentError, match="demonstrations"):
        BCAgent.create(env).learn(1)
    env.close()


def test_tdil_discriminators_separate_real_from_fake_transitions(state_env_config, expert_demos):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.tdil import TDILAgent

    _, trajectories = expert_demos
    vec = DummyVecEnv([lambda: make_env(state_env_config)])
    agent = TDILAgent.create(
        vec,
        seed=0,
        demos=trajectories,
        learning_starts=100,
        batch_size=64,
        buffer_size=2000,
        bc_pretrain_steps=100,  # the discriminators are under test, not the cloned actor
    )
    assert agent._expert["length"] == len(trajectories[0])  # exactly one demonstration
    agent.learn(250)
    for _ in range(300):  # more discriminator-only updates on the collected data (cheap)
        agent._train_discriminators(agent.replay_buffer.sample(64))
    demo = trajectories[0]
    states = torch.as_tensor(demo.observations["state"])
    t = agent.transition_discriminator
    with torch.no_grad():
        encoded = t.encode({"state": states})
        forward = torch.sigmoid(t.pair_logits(encoded[:-1], encoded[1:])).mean()
        backward = torch.sigmoid(t.pair_logits(encoded[1:], encoded[:-1])).mean()
        far = torch.sigmoid(t.pair_logits(encoded[:10], encoded[-10:])).mean()
        near_expert = agent.surrogate_reward({"state": states}).mean()
        random_states = torch.as_tensor(
            np.random.default_rng(0).uniform(-1, 1, states.shape), dtype=torch.float32
        )
        off_expert = agent.surrogate_reward({"state": random_states}).mean()
    assert forward > 0.6 and forward > backward + 0.2 and forward > far + 0.2
    assert near_expert > off_expert + 0.2
    action, _ = agent.predict({"state": states[:1].numpy()}, deterministic=True)
    assert action.shape == (1, 2)
    vec.close()
