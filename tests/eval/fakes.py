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


# --- synthetic paired campaigns: sim and real outcomes of the same episodes, with known truth ----

BIAS_REGIMES = ("unbiased", "optimistic", "mixed")


def paired_outcomes(
    rng: np.random.Generator,
    sim_p: np.ndarray,
    real_p: np.ndarray,
    correlation: float,
    episodes: int,
    trials: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated outcomes of ``episodes`` seeded episodes per cell, and real outcomes of the first
    ``trials`` of them, run again on the real robot.

    Each cell (any leading shape of ``sim_p``/``real_p``) has sim success probability ``sim_p``
    and real ``real_p``; a real trial and the simulated episode of the same seed have Pearson
    correlation ``correlation``, lowered where the two rates make it impossible (a binary pair
    with different rates cannot correlate perfectly). Returns (sim (..., episodes),
    real (..., trials)), both 0/1 floats.
    """
    sim_p, real_p = (np.array(a) for a in np.broadcast_arrays(np.asarray(sim_p, float), real_p))
    joint = sim_p * real_p + correlation * np.sqrt(sim_p * (1 - sim_p) * real_p * (1 - real_p))
    joint = np.clip(joint, np.maximum(0.0, sim_p + real_p - 1), np.minimum(sim_p, real_p))
    sim = rng.random((*sim_p.shape, episodes)) < sim_p[..., None]
    given_success = (joint / sim_p)[..., None]
    given_failure = ((real_p - joint) / (1 - sim_p))[..., None]
    chance = np.where(sim[..., :trials], given_success, given_failure)
    real = rng.random(chance.shape) < chance
    return sim.astype(float), real.astype(float)


def synthetic_rates(
    rng: np.random.Generator, draws: int, agents: int, regime: str, bias: float = 0.08
) -> tuple[np.ndarray, np.ndarray]:
    """True (sim, real) success probabilities of shape (draws, agents, 2 conditions).

    Agents' real success is spread over 0.2-0.9 under ``capture`` and lower under ``dim``. The
    simulation is ``unbiased``, ``optimistic`` (every agent ``bias`` higher in sim) or ``mixed``
    (alternate agents optimistic and pessimistic by ``bias``; a sim that misjudges agents
    differently, which no single correction fixes).
    """
    if regime not in BIAS_REGIMES:
        raise ValueError(f"unknown bias regime {regime!r}; expected one of {BIAS_REGIMES}")
    capture = rng.uniform(0.2, 0.9, size=(draws, agents))
    real = np.stack([capture, capture * rng.uniform(0.6, 0.95, size=(draws, agents))], axis=-1)
    signs = {
        "unbiased": np.zeros(agents),
        "optimistic": np.ones(agents),
        "mixed": np.where(np.arange(agents) % 2 == 0, 1.0, -1.0),
    }[regime]
    sim = np.clip(real + bias * signs[None, :, None], 0.02, 0.98)
    return sim, real


def write_paired_campaign(
    root,
    rng: np.random.Generator,
    real_p: np.ndarray,
    sim_p: np.ndarray,
    correlation: float,
    episodes: int = 60,
    trials: int = 10,
    seed_column: bool = True,
    scene: dict | None = None,
) -> tuple:
    """An evaluation directory and a trial log from ``paired_outcomes`` (agents x 2 conditions):
    ``root/eval`` (campaign.json and episode records, as ``driveenv evaluate`` writes them) and
    ``root/trials.csv`` (the first ``trials`` seeds of each agent and condition run for real).
    ``scene``: the campaign's scene identity (``eval.rollouts.scene_identity``), for a report.
    Returns (eval dir, trial log path)."""
    import json

    from eval.rollouts import CAMPAIGN_FILE, episode_paths

    agents = [f"agent{i}" for i in range(real_p.shape[0])]
    conditions = ["capture", "dim"]
    sim, real = paired_outcomes(rng, sim_p, real_p, correlation, episodes, trials)
    eval_dir = root / "eval"
    eval_dir.mkdir(parents=True)
    meta = {
        "scene": scene or {"name": "synthetic", "path": str(root), "sha256": "0" * 64},
        "agents": dict.fromkeys(agents, "expert"),
        "conditions": conditions,
        "seeds": list(range(episodes)),
    }
    (eval_dir / CAMPAIGN_FILE).write_text(json.dumps(meta))
    lines = ["agent,condition,trial,success,collision,duration" + (",seed" if seed_column else "")]
    for a, agent in enumerate(agents):
        for c, condition in enumerate(conditions):
            for seed in range(episodes):
                path, trajectory = episode_paths(eval_dir, agent, condition, seed)
                path.parent.mkdir(parents=True, exist_ok=True)
                success = bool(sim[a, c, seed])
                record = {"agent": agent, "condition": condition, "seed": seed, "success": success}
                record.update(collision=False, off_road=False, route_completion=float(success))
                record.update(duration=10.0, path_length=0.3, steps=10, **{"return": 0.0})
                path.write_text(json.dumps(record))
                np.savez(trajectory, x=np.linspace(0, 0.3, 5), y=np.zeros(5), yaw=np.zeros(5))
            for seed in range(trials):
                row = f"{agent},{condition},{seed},{bool(real[a, c, seed])},false,10"
                lines.append(row + (f",{seed}" if seed_column else ""))
    (root / "trials.csv").write_text("\n".join(lines) + "\n")
    return eval_dir, root / "trials.csv"
