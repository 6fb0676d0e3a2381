"""Fuzz: a damaged agent run folder (run.json, agent.zip's JSON or weights, replay buffer)
loads an agent or is one project-error line, and never runs the file's code."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents import algorithm_class, load_agent
from agents.persistence import META_ENTRY, WEIGHTS_ENTRY, load_replay_buffer
from tests.fuzz.strategies import FUZZ, check_one_line, mutated


class TinyEnv(gym.Env):
    """A 3-number observation, a 2-number action: enough for an agent to be built."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, True, {}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A SAC run folder as ``driveenv train`` leaves it (run.json, agent.zip, replay buffer)."""
    root = tmp_path_factory.mktemp("fuzz-run") / "base"
    root.mkdir()
    agent = algorithm_class("sac").create(
        TinyEnv(), seed=0, learning_starts=4, batch_size=4, buffer_size=32,
        policy_kwargs={"net_arch": [8, 8]},
    )  # fmt: skip
    agent.learn(8)
    agent.save(root / "agent.zip")
    agent.save_replay_buffer(root / "replay_buffer.npz")
    run = {"algorithm": "sac", "config": {}, "checkpoint": "agent.zip", "num_timesteps": 8}
    (root / "run.json").write_text(json.dumps(run))
    with zipfile.ZipFile(root / "agent.zip") as archive:
        meta = json.loads(archive.read(META_ENTRY))
        weights = archive.read(WEIGHTS_ENTRY)
    return root, run, meta, weights, agent


def _copy(root, tmp_path_factory):
    target = tmp_path_factory.mktemp("fuzz-case") / "run"
    shutil.copytree(root, target)
    return target


def _load_or_one_line(run):
    try:
        agent = load_agent(run)
    except Exception as error:  # noqa: BLE001 - the property is about which exceptions
        check_one_line(error)
    else:
        action, _ = agent.predict(np.zeros(3, np.float32), deterministic=True)
        assert np.shape(action) == (2,)


@FUZZ
@given(data=st.data())
def test_damaged_agent_json_or_run_json(run_dir, tmp_path_factory, data):
    root, run, meta, weights, _ = run_dir
    case = _copy(root, tmp_path_factory)
    if data.draw(st.booleans()):
        (case / "run.json").write_text(json.dumps(data.draw(mutated(run))))
    else:
        with zipfile.ZipFile(case / "agent.zip", "w") as archive:
            archive.writestr(META_ENTRY, json.dumps(data.draw(mutated(meta))))
            archive.writestr(WEIGHTS_ENTRY, weights)
    _load_or_one_line(case)


@FUZZ
@given(data=st.data())
def test_damaged_weights_or_archive(run_dir, tmp_path_factory, data):
    root, _, meta, weights, _ = run_dir
    case = _copy(root, tmp_path_factory)
    raw = bytearray((case / "agent.zip").read_bytes() if data.draw(st.booleans()) else weights)
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    if raw[:2] == b"PK" and len(raw) > len(weights) // 2:  # the whole archive, damaged
        (case / "agent.zip").write_bytes(bytes(raw))
    else:
        with zipfile.ZipFile(case / "agent.zip", "w") as archive:
            archive.writestr(META_ENTRY, json.dumps(meta))
            archive.writestr(WEIGHTS_ENTRY, bytes(raw))
    _load_or_one_line(case)


@FUZZ
@given(data=st.data())
def test_damaged_replay_buffer(run_dir, tmp_path_factory, data):
    root, *_, agent = run_dir
    with np.load(root / "replay_buffer.npz", allow_pickle=False) as saved:
        arrays = {name: saved[name] for name in saved.files}
    name = data.draw(st.sampled_from(sorted(arrays)))
    choice = data.draw(st.integers(0, 3))
    if choice == 0:
        del arrays[name]
    elif choice == 1:
        arrays[name] = arrays[name].astype(data.draw(st.sampled_from(["int8", "float64", "bool"])))
    elif choice == 2:
        arrays[name] = np.resize(
            arrays[name], (data.draw(st.integers(0, 40)), *arrays[name].shape[1:])
        )
    else:
        arrays[name] = np.array(data.draw(st.integers(-5, 100) | st.booleans()))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = tmp_path_factory.mktemp("fuzz-buffer") / "replay_buffer.npz"
    path.write_bytes(buffer.getvalue())
    before = agent.replay_buffer.pos
    try:
        load_replay_buffer(agent.replay_buffer, path)
    except Exception as error:  # noqa: BLE001
        check_one_line(error)
        assert agent.replay_buffer.pos == before  # refused before anything was written
    else:
        assert 0 <= agent.replay_buffer.pos < agent.replay_buffer.buffer_size
