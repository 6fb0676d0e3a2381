"""Scripted experts reach the goal; demonstrations round-trip through their file format."""

import numpy as np
import pytest

from agents.demos import load_demos, record_episode, save_demos
from agents.errors import DemoError
from agents.experts import make_expert
from simulator import EnvConfig, make_env


@pytest.mark.parametrize("vehicle", ["car", "diffdrive"])
@pytest.mark.parametrize("task", ["goal", "route"])
def test_expert_reaches_the_goal(synthetic_scene, vehicle, task):
    env = make_env(
        EnvConfig(scene=synthetic_scene, vehicle=vehicle, task=task, spawn="random", seed=1)
    )
    expert = make_expert(env)
    outcomes = [record_episode(env, expert, seed=100 + i) for i in range(20)]
    env.close()
    successes = sum(t.success for t in outcomes)
    assert successes >= 19, f"{vehicle}/{task}: {successes}/20"
    assert not any(t.infos["collision"].any() or t.infos["off_road"].any() for t in outcomes[:19])


def test_expert_needs_a_privileged_environment():
    import gymnasium as gym

    from agents.errors import AgentError

    with pytest.raises(AgentError, match="privileged_state"):
        make_expert(gym.make("Pendulum-v1"))


def test_demos_round_trip_all_sensors(tmp_path, synthetic_scene):
    env = make_env(
        EnvConfig(scene=synthetic_scene, obs="rgb+depth+state", image_size=16, spawn="random")
    )
    expert = make_expert(env)
    trajectories = [record_episode(env, expert, seed=s) for s in range(2)]
    env.close()
    path = tmp_path / "demos.npz"
    save_demos(path, trajectories, {"note": "test"})
    loaded = load_demos(path)
    assert len(loaded) == 2
    for original, copy in zip(trajectories, loaded, strict=True):
        assert set(copy.observations) == {"rgb", "depth", "state"}
        for key in copy.observations:
            np.testing.assert_array_equal(copy.observations[key], original.observations[key])
            assert len(copy.observations[key]) == len(copy) + 1
        np.testing.assert_array_equal(copy.actions, original.actions)
        np.testing.assert_array_equal(copy.rewards, original.rewards)
        np.testing.assert_array_equal(copy.infos["pose"], original.infos["pose"])
        assert copy.success == original.success
    assert copy.observations["rgb"].dtype == np.uint8


def test_bad_demo_files_give_one_clear_error(tmp_path, expert_demos):
    path, _ = expert_demos
    with pytest.raises(DemoError, match="not found"):
        load_demos(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(DemoError, match="garbage.npz"):
        load_demos(garbage)
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["step_offsets"] = arrays["step_offsets"][:-1]  # one trajectory short
    broken = tmp_path / "broken.npz"
    np.savez(broken, **arrays)
    with pytest.raises(DemoError, match="offsets"):
        load_demos(broken)


def test_demos_command_records_loads_and_refuses_to_overwrite(synthetic_scene, tmp_path, capsys):
    from agents.demos import load_demos
    from driveenv import cli

    out = tmp_path / "demos.npz"
    command = ["demos", "--scene", str(synthetic_scene), "--episodes", "2", "--out", str(out)]
    assert cli.main(command) == 0
    trajectories = load_demos(out)
    assert len(trajectories) == 2
    assert all(len(t) > 0 for t in trajectories)
    assert "2 episodes" in capsys.readouterr().out
    assert cli.main(command) == 1
    assert "use --overwrite" in capsys.readouterr().err
