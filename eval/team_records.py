"""``driveenv evaluate`` on teams: runs of ``driveenv train iql|vdn|qmix|ddn|dmix --agents N``.

A team run is evaluated like any agent (every condition, the same episode seeds, the layout of
``eval.rollouts``: campaign.json, episodes/AGENT/CONDITION/seed_S.json and .npz, episodes.csv),
in the multi-robot environment it trained in (``simulator.make_multi`` with its run.json's
environment, under the campaign's lighting). The arrangement of spawns and goals of episode
seed S is drawn from S alone (``reset(options={"task_seed": S})``), so a resumed campaign
replays the same episodes.

A team record holds every column of a single-agent record, read for the team: ``success`` is
team success (every robot arrived), ``collision`` any contact (robot-robot or scene),
``off_road`` any robot off the map, ``route_completion`` the fraction of robots that arrived,
``path_length`` the robots' summed path; and the team's own columns (``TEAM_COLUMNS``):
robots, arrivals, whether two robots touched, whether a robot hit the scene. The trajectory
holds x, y, yaw as (steps + 1, robots) arrays (NaN once a robot has left) and each robot's
goal, for the report's map (``eval.report_team``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import write_text_atomic
from eval.episode import control_period
from eval.errors import CampaignError
from eval.records import is_finished
from eval.rollouts import (
    EPISODES_FILE,
    RECORD_KEYS,
    AgentSpec,
    Campaign,
    CampaignConfig,
    _check_or_write_campaign,
    episode_paths,
    load_campaign,
    save_episode,
    write_episodes_csv,
)

TEAM_EPISODES_FILE = "team_episodes.csv"
TEAM_COLUMNS = (
    "robots",
    "arrived",
    "team_success",
    "robot_collision",  # two robots touched during the episode
    "scene_collision",  # a robot hit the scene
    "robot_collisions",  # robots involved in robot-robot contacts
    "scene_collisions",  # robots that hit the scene
)


def is_team_run(spec: AgentSpec) -> bool:
    """Whether ``spec`` is a run of a multi-agent learner (``agents.marl``)."""
    from agents.marl import MARL_ALGORITHMS

    return not spec.builtin and spec.run_info().get("algorithm") in MARL_ALGORITHMS


def team_agents(agents: list[AgentSpec]) -> bool:
    """True when every agent is a team run, False when none is; a mix is refused."""
    teams = [spec for spec in agents if is_team_run(spec)]
    if teams and len(teams) != len(agents):
        others = ", ".join(spec.name for spec in agents if spec not in teams)
        raise CampaignError(
            f"{teams[0].source} is a multi-robot team and {others} not: evaluate teams in a "
            "campaign of their own (another --out)"
        )
    return bool(teams)


def make_team_env(config: CampaignConfig, spec: AgentSpec, condition: str, scene):
    """The team's environment and driver: its run's ``EnvConfig`` under ``condition``."""
    from dataclasses import replace

    from agents.marl.agent import team_driver
    from simulator.multi_env import make_multi

    driver, trained = team_driver(spec.source)
    settings = {"lighting": condition, "seed": 0, "photometric_augmentation": False}
    if "rgb" in trained.obs or "depth" in trained.obs:
        settings["renderer"] = config.renderer
    if config.max_episode_steps:
        settings["max_episode_steps"] = config.max_episode_steps
    env = make_multi(replace(trained, scene=scene.root, **settings), scene=scene)
    return env, driver


def run_team_episode(env, driver, seed: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Roll one team episode (seed ``seed``) to its end; its record and trajectories."""
    observations, infos = env.reset(seed=seed, options={"task_seed": seed})
    driver.reset()
    n = env.count
    poses = [np.stack([infos[a]["pose"] for a in env.possible_agents])]
    total = 0.0
    while env.agents:
        observations, rewards, _, _, infos = env.step(driver(observations))
        total += float(sum(rewards.values()))
        pose = np.full((n, 3), np.nan)
        for i, agent in enumerate(env.possible_agents):
            if agent in infos:
                pose[i] = infos[agent]["pose"]
        poses.append(pose)
    path = np.stack(poses)  # (T + 1, N, 3)
    steps = np.linalg.norm(np.diff(path[:, :, :2], axis=0), axis=-1)
    stats = env.episode_stats
    record = {
        "seed": int(seed),
        "success": bool(stats["team_success"]),
        "collision": bool(stats["robot_collisions"] or stats["scene_collisions"]),
        "off_road": bool(stats["off_road"]),
        "route_completion": stats["arrived"] / n,
        "duration": stats["steps"] * control_period(env),
        "path_length": float(np.nansum(steps)),
        "steps": int(stats["steps"]),
        "return": total,
        "robots": n,
        "arrived": int(stats["arrived"]),
        "team_success": bool(stats["team_success"]),
        "robot_collision": bool(stats["robot_collisions"]),
        "scene_collision": bool(stats["scene_collisions"]),
        "robot_collisions": int(stats["robot_collisions"]),
        "scene_collisions": int(stats["scene_collisions"]),
    }
    goals = np.array([task.goal_xy for task in env.tasks], dtype=float)
    trajectory = {"x": path[..., 0], "y": path[..., 1], "yaw": path[..., 2], "goals": goals}
    return record, trajectory


def run_team_campaign(config: CampaignConfig, out: str | Path, scene=None) -> Campaign:
    """Run every missing team episode of ``config`` into ``out``; the whole campaign after.

    Episodes run in this process, one environment per (team, condition).
    """
    from common.progress import progress_bar
    from scene_builder.bundle import load_scene

    out = Path(out)
    scene = scene if scene is not None else load_scene(config.scene)
    _check_or_write_campaign(config, out, scene.identity())
    total = len(config.agents) * len(config.conditions) * len(config.seeds)
    with progress_bar() as progress:
        task = progress.add_task("team episodes", total=total, status="")
        for spec in config.agents:
            for condition in config.conditions:
                _run_condition(config, spec, condition, scene, out, lambda: progress.advance(task))
    campaign = load_campaign(out)
    write_episodes_csv(out / EPISODES_FILE, campaign.records)
    write_team_csv(out / TEAM_EPISODES_FILE, campaign.records)
    return campaign


def _run_condition(config, spec, condition, scene, out: Path, advance) -> None:
    todo = []
    for seed in config.seeds:
        if is_finished(episode_paths(out, spec.name, condition, seed)[0], RECORD_KEYS):
            advance()
        else:
            todo.append(seed)
    if not todo:
        return
    env, driver = make_team_env(config, spec, condition, scene)
    try:
        for seed in todo:
            record, trajectory = run_team_episode(env, driver, seed)
            save_episode(out, {"agent": spec.name, "condition": condition, **record}, trajectory)
            advance()
    finally:
        env.close()


def write_team_csv(path: Path, records: list[dict[str, Any]]) -> None:
    """One row per team episode: agent, condition, seed, the team columns, steps, duration."""
    columns = ("agent", "condition", "seed", *TEAM_COLUMNS, "off_road", "steps", "duration")
    columns += ("return",)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        if "robots" in record:
            writer.writerow(record)
    write_text_atomic(path, buffer.getvalue())
