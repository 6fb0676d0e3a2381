"""Small stand-ins for the eval tests: a point robot on the synthetic table, scripted drivers, and
a radiance-field stand-in that renders by looking up real frames.

The simulator's own tests cover the real environment; these let the campaign and report
machinery be tested in seconds and with agents of known, different skill.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np

from scene_builder.datasets import PosedDataset, split_indices
from scene_builder.lighting import PRESETS as LIGHTING_PRESETS

CALLS: list[tuple[str, int]] = []


def count_verified_loads(monkeypatch) -> list[Path]:
    """A list that grows by one each time a scene bundle is loaded with its hashes checked (the
    one file every bundle has, its collision mesh, is hashed once per such load)."""
    import scene_builder.bundle

    loads: list[Path] = []
    real = scene_builder.bundle.sha256_of

    def counting(path):
        if Path(path).name == scene_builder.bundle.COLLISION_FILE:
            loads.append(Path(path))
        return real(path)

    monkeypatch.setattr(scene_builder.bundle, "sha256_of", counting)
    return loads


HALF_PLATE = np.array([0.6, 0.45])  # the synthetic scene's plate, metres


class PointRobot(gym.Env):
    """Moves by its action; succeeds within 0.05 m of the goal; falls off past the plate edge."""

    def __init__(self, speed: float):
        self.speed = speed
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.observation_space = gym.spaces.Box(-10, 10, (4,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.xy = self.np_random.uniform(-0.4, 0.4, 2) * [1, 0.8]
        self.goal = self.np_random.uniform(-0.4, 0.4, 2) * [1, 0.8]
        self.steps = 0
        return self._obs(), {"pose": (*self.xy, 0.0)}

    def _obs(self):
        return np.concatenate([self.xy, self.goal]).astype(np.float32)

    def step(self, action):
        self.xy = self.xy + self.speed * np.clip(action, -1, 1)
        self.steps += 1
        success = bool(np.linalg.norm(self.xy - self.goal) < 0.05)
        off = bool((np.abs(self.xy) > HALF_PLATE).any())
        info = {"pose": (*self.xy, 0.0), "success": success, "off_road": off, "collision": off}
        return self._obs(), float(success), success or off, self.steps >= 40, info


def point_env(config, agent, condition, scene):
    """Slower under 'dim': every agent does worse there."""
    return PointRobot(speed=0.05 if condition == "capture" else 0.025)


def scripted_policy(agent, env, seed):
    """``agent.source``: 'toward' (goal-seeking), 'away', or a number p: goal-seeking with
    probability p per step, otherwise a random direction (seeded by the episode)."""
    CALLS.append((agent.name, seed))
    rng = np.random.default_rng(seed)
    skill = {"toward": 1.0, "away": -1.0}.get(agent.source)
    skill = float(agent.source) if skill is None else skill

    def act(obs):
        direction = obs[2:] - obs[:2]
        direction = direction / max(np.linalg.norm(direction), 1e-6)
        if skill < 0:
            return -direction
        return direction if rng.random() < skill else rng.normal(size=2)

    return act


PRESETS = ("capture", "dim")  # the presets the fidelity tests score


class _Output:
    def __init__(self, rgb):
        self.rgb = rgb


class StandInField:
    """Renders a pose by returning an image: the frame at that pose (oracle) or the nearest
    training frame (a crude image-based renderer), under any preset of scene_builder.lighting."""

    holdout_every = 8  # what a trained field records in field.json: its frames held out

    def __init__(self, dataset: PosedDataset, oracle: bool):
        train, _ = split_indices(len(dataset), self.holdout_every)
        self.dataset, self.oracle, self.train = dataset, oracle, train
        self.centres = dataset.poses[:, :3, 3]
        self.lighting_presets = dict.fromkeys(PRESETS)

    def render(self, camera_to_world, intrinsics, width, height, appearance="capture"):
        images = []
        for pose in np.asarray(camera_to_world).reshape(-1, 4, 4):
            distance = np.linalg.norm(self.centres - pose[:3, 3], axis=1)
            candidates = np.arange(len(distance)) if self.oracle else self.train
            index = candidates[np.argmin(distance[candidates])]
            image = cv2.imread(str(self.dataset.frames[index].image_path))[:, :, ::-1]
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA) / 255.0
            images.append(LIGHTING_PRESETS[appearance].apply(image))
        return _Output(np.stack(images).astype(np.float32))
