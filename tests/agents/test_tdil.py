"""TDIL's reward design: what the discriminators see, how terminations are valued, checkpoints."""

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.demos import Trajectory, mirror_trajectory
from agents.errors import AgentError
from agents.tdil import EGOCENTRIC_STATE_FIELDS, TDILAgent
from agents.tdil.buffer import multi_step_pairs
from simulator import make_env
from simulator.sensors import STATE_FIELDS


def _tdil_agent(env_config, trajectories, **hyperparameters):
    """A TDIL agent (seed 0, batch 64) on one vectorised env built from ``env_config``."""
    vec = DummyVecEnv([lambda: make_env(env_config)])
    agent = TDILAgent.create(vec, seed=0, demos=trajectories, batch_size=64, **hyperparameters)
    return agent, vec


@pytest.fixture(scope="module")
def tdil_setup(state_env_config, expert_demos):
    _, trajectories = expert_demos
    agent, vec = _tdil_agent(
        state_env_config, trajectories, bc_pretrain_steps=10, buffer_size=1000, learning_starts=32
    )
    yield agent, trajectories
    vec.close()


def _states(array) -> dict[str, torch.Tensor]:
    return {"state": torch.as_tensor(np.asarray(array, dtype=np.float32))}


def test_terminations_at_the_demonstrations_end_are_told_from_failures(tdil_setup):
    """The goal of other episodes (other spawns, other goals) counts as the expert's end; the
    states on the way, where a crash would end an episode, do not."""
    agent, trajectories = tdil_setup
    others = trajectories[1:]
    finals = agent.ends_like_expert(_states([t.observations["state"][-1] for t in others]))
    midway = agent.ends_like_expert(_states([t.observations["state"][len(t) // 2] for t in others]))
    starts = agent.ends_like_expert(_states([t.observations["state"][0] for t in others]))
    assert finals.all()
    assert not midway.any() and not starts.any()


def test_the_goal_reached_from_any_side_or_closer_than_the_expert_is_its_end(tdil_setup):
    """The goal is a disc: an agent that arrives with it beside or behind it, or stops nearer its
    centre than the demonstration did, has ended as the expert did (the goal's direction in the
    vehicle's frame once decided this, and most of the cloned actor's successes scored zero)."""
    agent, trajectories = tdil_setup
    final = np.array(trajectories[0].observations["state"][-1], dtype=np.float32)
    column = {name: STATE_FIELDS.index(name) for name in STATE_FIELDS}
    arrivals = np.repeat(final[None], 4, axis=0)
    distance = final[column["goal_distance"]]
    for row, angle in enumerate((np.pi / 2, -np.pi / 2, np.pi)):  # beside, other side, behind
        arrivals[row, column["target_x"]] = distance * np.cos(angle)
        arrivals[row, column["target_y"]] = distance * np.sin(angle)
        arrivals[row, column["target_bearing_cos"]] = np.cos(angle)
        arrivals[row, column["target_bearing_sin"]] = np.sin(angle)
    arrivals[3, [column["target_x"], column["goal_distance"]]] = 0.3 * distance  # nearer
    assert agent.ends_like_expert(_states(arrivals)).all()
    farther = final.copy()
    farther[[column["target_x"], column["goal_distance"]]] = 3 * distance
    assert not agent.ends_like_expert(_states([farther])).any()


def test_a_crash_is_worth_nothing_and_the_goal_the_most(tdil_setup):
    agent, trajectories = tdil_setup
    other = trajectories[1].observations["state"]
    next_obs = _states([other[-1], other[len(other) // 2]])  # goal reached / crash half-way
    surrogate = torch.tensor([0.3, 0.9])  # even a crash that looks like an expert state
    value = agent._absorbing_value(next_obs, surrogate).squeeze(1)
    best = (agent.td_weight + agent.irl_weight) / (1 - agent.gamma)
    assert value[0].item() == pytest.approx(best) and value[1].item() == 0.0
    with torch.no_grad():
        rewards = agent.td_weight * agent.surrogate_reward(next_obs) + agent.irl_weight * (
            agent.irl_reward(next_obs, next_obs)
        )
    assert torch.all(rewards <= agent.td_weight + agent.irl_weight)  # no step pays more


def test_egocentric_discriminators_ignore_where_the_episode_is(tdil_setup):
    """Rewards must not change with the world-frame heading/position or the elapsed time, which
    differ between the demonstration's spawn and every other."""
    agent, trajectories = tdil_setup
    states = np.array(trajectories[1].observations["state"], dtype=np.float32)
    moved = states.copy()
    ignored = [i for i, name in enumerate(STATE_FIELDS) if name not in EGOCENTRIC_STATE_FIELDS]
    assert {STATE_FIELDS[i] for i in ignored} >= {
        "heading_cos",
        "goal_frame_x",
        "time",
        "completion",
    }
    moved[:, ignored] = np.random.default_rng(0).uniform(-1, 1, (len(states), len(ignored)))
    with torch.no_grad():
        np.testing.assert_array_equal(
            agent.surrogate_reward(_states(states)), agent.surrogate_reward(_states(moved))
        )
        np.testing.assert_array_equal(
            agent.irl_reward(_states(states[:-1]), _states(states[1:])),
            agent.irl_reward(_states(moved[:-1]), _states(moved[1:])),
        )


def test_tdil_and_the_agent_share_one_set_of_defaults(state_env_config, expert_demos):
    """TDILAgent adds the project's SAC defaults only: TDIL's own options and the SAC settings
    TDIL changes are the same whichever class is built."""
    import inspect

    from agents.tdil import TDIL

    vec = DummyVecEnv([lambda: make_env(state_env_config)])
    demos = expert_demos[1][:1]
    agent = TDILAgent.create(vec, demos=demos, bc_pretrain_steps=1)
    plain = TDIL("MultiInputPolicy", vec, demos=demos, bc_pretrain_steps=1)
    vec.close()
    skip = {"self", "policy", "env", "demos", "bc_pretrain_steps", "kwargs"}
    options = [name for name in inspect.signature(TDIL.__init__).parameters if name not in skip]
    assert len(options) >= 10
    for name in [*options, "learning_starts"]:
        assert getattr(agent, name) == getattr(plain, name), name
    assert agent.irl_weight == 0.0 and agent.mirror and agent.learning_starts == 256
    assert float(agent.log_ent_coef.detach().exp()) == pytest.approx(0.01)


def test_bad_options_are_clear_errors(state_env_config, expert_demos):
    vec = DummyVecEnv([lambda: make_env(state_env_config)])
    with pytest.raises(AgentError, match="discriminator_features='pose'"):
        TDILAgent.create(vec, demos=expert_demos[1], discriminator_features="pose")
    with pytest.raises(AgentError, match="terminal='never'"):
        TDILAgent.create(vec, demos=expert_demos[1], terminal="never")
    vec.close()


def test_checkpoint_keeps_the_reward_design(tmp_path, tdil_setup):
    agent, trajectories = tdil_setup
    agent.learn(64)
    accuracy = agent._accuracy  # the calibration logged as train/disc_accuracy_*
    assert set(accuracy) == {"real", "random", "reversed"}
    agent.save(tmp_path / "tdil.zip")
    loaded = TDILAgent.load(tmp_path / "tdil.zip", env=agent.get_env())
    loaded.set_demonstrations(trajectories[:1])
    assert loaded.discriminator_features == "egocentric" and loaded.terminal == "expert_end"
    states = _states(trajectories[2].observations["state"])
    with torch.no_grad():
        np.testing.assert_array_equal(
            agent.surrogate_reward(states), loaded.surrogate_reward(states)
        )
    batch = trajectories[2].observations["state"][:5]
    np.testing.assert_array_equal(
        agent.predict({"state": batch}, deterministic=True)[0],
        loaded.predict({"state": batch}, deterministic=True)[0],
    )


def test_multi_step_negatives_come_from_one_episode(tdil_setup):
    """The hard negatives are (s_t, s_t+k), 2 <= k <= 5, never across an episode's end: the
    state's elapsed-time field tells how many steps apart they really are."""
    agent, trajectories = tdil_setup
    buffer = agent.replay_buffer
    buffer.reset()  # an earlier test's learn() may have stopped mid-episode
    for trajectory in trajectories[1:8]:  # whole episodes, back to back, as collected
        states = trajectory.observations["state"]
        for step, action in enumerate(trajectory.actions):
            done = np.array([step == len(trajectory) - 1])
            buffer.add(
                {"state": states[step][None]},
                {"state": states[step + 1][None]},
                action[None],
                np.zeros(1),
                done,
                [{}],
            )
    first, later = multi_step_pairs(agent.replay_buffer, 256)
    time = STATE_FIELDS.index("time")
    steps_apart = (later["state"][:, time] - first["state"][:, time]) * 200  # max_episode_steps
    assert len(steps_apart) > 100
    np.testing.assert_allclose(steps_apart, steps_apart.round(), atol=1e-3)
    assert steps_apart.min() >= 2 - 1e-3 and steps_apart.max() <= 5 + 1e-3


def test_critic_batches_carry_the_demonstration_to_its_end(tdil_setup):
    """Appended expert transitions are terminal exactly when they reach the expert's last state,
    so the critic learns what ending there is worth."""
    agent, trajectories = tdil_setup
    if agent.replay_buffer.pos < 16:
        agent.learn(64, reset_num_timesteps=False)
    batch = agent.replay_buffer.sample(16)
    mixed = agent._with_demonstration(batch, 400)
    assert mixed.actions.shape == (416, 2) and mixed.next_observations["state"].shape[0] == 416
    finals = agent._expert.states["state"][agent._expert.final]  # the demo's, its mirror's
    assert (finals[0] == torch.as_tensor(trajectories[0].observations["state"][-1])).all()
    expert_next = mixed.next_observations["state"][16:]
    reaches_end = (expert_next[:, None, :] == finals[None]).all(dim=2).any(dim=1)
    assert reaches_end.any()
    np.testing.assert_array_equal(mixed.dones[16:, 0].bool(), reaches_end)
    assert agent.ends_like_expert(mixed.next_observations)[16:][reaches_end].all()


@pytest.mark.training
def test_gradient_penalty_keeps_the_irl_discriminator_from_saturating():
    """Two separable clouds of transitions: unregularised, D drives the agent's to probability ~0
    (no reward anywhere); with DAC's penalty it keeps a graded, non-zero probability."""
    from gymnasium import spaces

    from agents.tdil.networks import PairDiscriminator, bce

    torch.manual_seed(0)
    space = spaces.Dict({"state": spaces.Box(-5, 5, (4,), np.float32)})
    expert = torch.randn(128, 4) * 0.1 + 0.5
    agent = torch.randn(128, 4) * 0.1 - 0.5
    agent_probability = {}
    for penalty in (0.0, 10.0):
        d = PairDiscriminator(space)
        optimizer = torch.optim.Adam(d.parameters(), lr=3e-3)
        for _ in range(150):
            real = (d.features({"state": expert}), d.features({"state": expert.flip(0)}))
            fake = (d.features({"state": agent}), d.features({"state": agent.flip(0)}))
            loss = bce(d.pair_logits(*map(d.embedding, real)), 1.0)
            loss = loss + bce(d.pair_logits(*map(d.embedding, fake)), 0.0)
            if penalty:
                loss = loss + penalty * d.gradient_penalty(real, fake)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            logits = d.pair_logits(d.encode({"state": agent}), d.encode({"state": agent.flip(0)}))
            agent_probability[penalty] = torch.sigmoid(logits).mean().item()
    assert agent_probability[0.0] < 1e-3 and agent_probability[10.0] > 0.05


@pytest.mark.training
def test_tdil_discriminators_separate_real_from_fake_transitions(state_env_config, expert_demos):
    _, trajectories = expert_demos
    agent, vec = _tdil_agent(
        state_env_config,
        trajectories,
        learning_starts=100,
        buffer_size=2000,
        bc_pretrain_steps=100,  # the discriminators are under test, not the cloned actor
    )
    # exactly one demonstration (and its mirror image)
    assert len(agent._expert.transitions) == 2 * len(trajectories[0])
    agent.learn(250)
    # more discriminator-only updates on the collected data (cheap): without the completion field
    # the direction of time is learned more slowly (300 updates: forward 0.35, backward 0.34)
    for _ in range(1000):
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


def _drive(env, spawn, goal, actions) -> Trajectory:
    """The states the simulator produces from ``spawn`` under ``actions`` (until it ends)."""
    obs, _ = env.reset(seed=0, options={"spawn": spawn, "goal": goal})
    states, taken = [obs["state"]], []
    for action in actions:
        obs, _, terminated, truncated, _ = env.step(action)
        states.append(obs["state"])
        taken.append(action)
        if terminated or truncated:
            break
    return Trajectory({"state": np.array(states)}, np.array(taken), np.zeros(len(taken)), False)


def test_mirrored_episodes_are_what_the_simulator_does_in_the_mirrored_world(state_env_config):
    """Drive a swerving path, then its mirror image from the reflected spawn towards the
    reflected goal (the plate is symmetric about y = 0; the path misses the boxes): every state
    is the mirrored state."""
    env = make_env(state_env_config)
    steps = np.arange(40)
    actions = np.stack([0.8 * np.sin(steps / 6.0), np.where(steps < 20, 0.6, -0.3)], 1)
    spawn, goal = np.array([-0.3, 0.0, 0.4]), np.array([0.3, 0.2])  # clear of the boxes
    driven = _drive(env, spawn, goal, actions.astype(np.float32))
    mirrored = mirror_trajectory(driven, "car")
    replayed = _drive(env, spawn * [1, -1, -1], goal * [1, -1], mirrored.actions)
    env.close()
    assert len(driven) >= 30 and len(replayed) == len(driven)
    assert np.abs(driven.observations["state"][:, STATE_FIELDS.index("target_y")]).max() > 0.05
    np.testing.assert_allclose(
        replayed.observations["state"], mirrored.observations["state"], atol=1e-4
    )


def test_mirrored_scan_looks_the_other_way():
    """Scan rays go counter-clockwise from straight ahead; the mirror image of the ray at angle
    a is the ray at -a, and mirroring twice gives the scan back."""
    rays = 16
    scan = np.random.default_rng(0).uniform(0, 1, (3, rays)).astype(np.float32)
    state = np.zeros((3, len(STATE_FIELDS)), np.float32)
    demo = Trajectory({"state": state, "scan": scan}, np.zeros((2, 2)), np.zeros(2), True)
    mirrored = mirror_trajectory(demo, "car").observations["scan"]
    angles = np.arange(rays) * 2 * np.pi / rays
    for ray in range(rays):  # the mirrored ray k reads the original ray at angle -angle_k
        source = int(
            np.flatnonzero(
                np.isclose(np.cos(angles), np.cos(-angles[ray]))
                & np.isclose(np.sin(angles), np.sin(-angles[ray]))
            )[0]
        )
        np.testing.assert_array_equal(mirrored[:, ray], scan[:, source])
    twice = mirror_trajectory(mirror_trajectory(demo, "car"), "car")
    np.testing.assert_array_equal(twice.observations["scan"], scan)


def test_mirror_doubles_the_expert_transitions(state_env_config, expert_demos):
    _, trajectories = expert_demos
    vec = DummyVecEnv([lambda: make_env(state_env_config)])
    agent = TDILAgent.create(vec, seed=0, demos=trajectories, mirror=True, bc_pretrain_steps=10)
    vec.close()
    n = len(trajectories[0])
    expert = agent._expert
    assert len(expert.transitions) == 2 * n
    steer = STATE_FIELDS.index("steer")
    np.testing.assert_array_equal(
        expert.states["state"][n + 1 :, steer], -expert.states["state"][: n + 1, steer]
    )
    # no transition joins the two trajectories, and each ends (a termination) at its own end
    assert n not in expert.transitions.tolist()
    assert expert.ends_by_termination.nonzero().flatten().tolist() == [n - 1, 2 * n]
    finals = {"state": expert.states["state"][expert.final]}
    assert agent.ends_like_expert(finals).all()
