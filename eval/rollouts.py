"""Simulated evaluation campaigns: every agent under every condition on the same seeded episodes.

An evaluation directory (EVAL) holds::

    campaign.json                 scene (path, name, SHA-256 of its scene.json), agents, conditions,
                                  episode seeds, renderer: what the report checks its inputs against
    episodes.csv                  one row per finished episode (EPISODE_COLUMNS)
    episodes/AGENT/CONDITION/seed_S.json   the same record, written when the episode finishes
    episodes/AGENT/CONDITION/seed_S.npz    its trajectory: x, y, yaw per step

Each episode's files are written atomically as soon as it ends, so an interrupted campaign
resumes by skipping every (agent, condition, seed) that already has its record; ``episodes.csv``
is rebuilt from the records at the end. Work is split into (agent, condition, few seeds) chunks
run by a process pool (spawned processes: PyBullet and torch do not survive fork well); each chunk
builds its environment once, from the scene bundle the campaign loaded (and hashed) once.

Agents are training run folders (``agents.load_agent``; the folder name is the agent's name in
the report and in the real trial log) or two built-in baselines: ``random`` (uniform actions,
seeded) and ``expert`` (the privileged scripted driver of ``agents.experts``).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from common.atomic import atomic_path, write_json_atomic, write_text_atomic
from common.config_cli import option
from eval.episode import LANE_METRICS, Policy, run_episode
from eval.errors import CampaignError
from eval.records import is_finished, read_record

if TYPE_CHECKING:
    from scene_builder.bundle import SceneBundle

CAMPAIGN_FILE = "campaign.json"
EPISODES_FILE = "episodes.csv"
EPISODES_DIR = "episodes"
BUILTIN_POLICIES = ("random", "expert")
AGENT_RENDERERS = ("baked", "mesh", "field")  # the cameras an agent may be evaluated with
EPISODE_COLUMNS = (
    "agent",
    "condition",
    "seed",
    "success",
    "collision",
    "off_road",
    "route_completion",
    "mean_lateral_deviation",  # route task (lane keeping): metres from the route, over the steps
    "max_lateral_deviation",  # empty for goal tasks
    "duration",
    "path_length",
    "steps",
    "return",
)
RECORD_KEYS = tuple(c for c in EPISODE_COLUMNS if c not in LANE_METRICS)  # every record has these
SEEDS_PER_CHUNK = 4

EnvFactory = Callable[["CampaignConfig", "AgentSpec", str, "SceneBundle"], Any]
PolicyFactory = Callable[["AgentSpec", Any, int], Policy]


@dataclass(frozen=True)
class AgentSpec:
    """An agent of the campaign: its name and where it comes from (run folder or built-in)."""

    name: str
    source: str  # a run directory, or one of BUILTIN_POLICIES
    trust_pickles: bool = False  # open a pickled (SB3-format) run folder: see agents.load_agent
    renderer: str | None = None  # this agent's camera (``RUN@RENDERER``); None: the campaign's

    @property
    def builtin(self) -> bool:
        return self.source in BUILTIN_POLICIES

    def run_info(self) -> dict[str, Any]:
        """The run's ``run.json`` (empty for built-ins)."""
        if self.builtin:
            return {}
        path = Path(self.source) / "run.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise CampaignError(
                f"{path}: not found (is {self.source} a 'driveenv train' run?)"
            ) from None
        except json.JSONDecodeError as error:
            raise CampaignError(f"{path}: not valid JSON ({error})") from None


def agent_specs(runs: Sequence[str], trust_pickles: bool = False) -> list[AgentSpec]:
    """Name each run after its folder; refuse two agents with one name. ``RUN@RENDERER`` (e.g.
    ``runs/ppo@field``) is the run evaluated with that camera, named ``ppo@field``: beside
    ``runs/ppo`` it measures the camera transfer gap (``eval.report_transfer``)."""
    specs = []
    for run in runs:
        source, at, renderer = run.rpartition("@")
        if not at or renderer not in AGENT_RENDERERS:
            source, renderer = run, None
        name = source if source in BUILTIN_POLICIES else Path(source).resolve().name
        name = f"{name}@{renderer}" if renderer else name
        specs.append(AgentSpec(name, source, trust_pickles, renderer))
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CampaignError(f"two runs share the name {', '.join(twice)}: rename one run folder")
    for spec in specs:
        if not spec.builtin and not Path(spec.source).is_dir():
            raise CampaignError(
                f"{spec.source}: no such run folder (or use {' / '.join(BUILTIN_POLICIES)})"
            )
    return specs


@dataclass
class CampaignConfig:
    """What to run: agents x conditions x episode seeds on one scene."""

    scene: Path
    agents: list[AgentSpec]
    conditions: list[str] = field(default_factory=lambda: ["capture"])
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    # The environment fields below apply to every agent, whatever it trained on; the CLI fills
    # them from the environment-options group (EnvConfig's defaults). ``max_episode_steps``
    # None keeps each agent's own training limit.
    renderer: str = "mesh"
    max_episode_steps: int | None = None
    workers: int = option(1, "parallel worker processes")
    task: str = "goal"
    spawn: str = "scene"

    def __post_init__(self) -> None:
        self.scene = Path(self.scene)
        if not self.agents:
            raise CampaignError("no agents to evaluate: name at least one run folder")
        if not self.conditions or any(not c for c in self.conditions):
            raise CampaignError(
                f"conditions {self.conditions!r}: give lighting preset names, e.g. capture,dim"
            )
        if not self.seeds:
            raise CampaignError("no episode seeds: give --episodes N or --seeds")
        if len(set(self.seeds)) != len(self.seeds):
            raise CampaignError(f"episode seeds repeat: {self.seeds}")


def scene_identity(scene: str | Path | SceneBundle) -> dict[str, str]:
    """Name, path and SHA-256 of a scene's scene.json (which holds the hashes of all its files)."""
    from scene_builder.bundle import as_scene

    return as_scene(scene).identity()


# --- environment and policy for an agent ---------------------------------------------------------


def make_sim_env(config: CampaignConfig, agent: AgentSpec, condition: str, scene: SceneBundle):
    """The simulator env ``agent`` was trained in (run.json's env_config: sensors, vehicle,
    camera, task), on the campaign's loaded ``scene``, under ``condition``, without random
    augmentation."""
    from dataclasses import fields

    from simulator import EnvConfig, make_env

    info = agent.run_info()
    known = {f.name for f in fields(EnvConfig)}
    merged = {**info.get("config", {}), **info, **info.get("env_config", {})}
    settings = {k: v for k, v in merged.items() if k in known}
    settings.pop("scene", None)
    settings.update(
        lighting=condition,
        seed=0,
        photometric_augmentation=False,
        task=config.task,
        spawn=config.spawn,
        goal_radius=None,
    )
    if "rgb" in str(settings.get("obs", "")) or "depth" in str(settings.get("obs", "")):
        settings["renderer"] = agent.renderer or config.renderer
    if config.max_episode_steps:
        settings["max_episode_steps"] = config.max_episode_steps
    return make_env(EnvConfig(scene=scene.root, **settings), scene=scene)


def make_policy(agent: AgentSpec, env, seed: int) -> Policy:
    """A callable obs -> action for a run folder or a built-in baseline, fresh for episode ``seed``."""
    if agent.source == "random":
        space = env.action_space
        space.seed(seed)
        return lambda obs: space.sample()
    if agent.source == "expert":
        from agents.experts import make_expert

        expert = make_expert(env)
        return lambda obs: expert.predict(obs, deterministic=True)[0]
    model = _load_model(agent.source, agent.trust_pickles)
    return lambda obs: model.predict(obs, deterministic=True)[0]


@functools.lru_cache(maxsize=4)
def _load_model(run_dir: str, trust_pickles: bool = False):
    """A trained agent, loaded once per worker process and reused for its episodes."""
    from agents import load_agent

    return load_agent(run_dir, trust_pickles=trust_pickles)


# --- the campaign ----------------------------------------------------------------------------------


def episode_paths(out: Path, agent: str, condition: str, seed: int) -> tuple[Path, Path]:
    folder = out / EPISODES_DIR / agent / condition
    return folder / f"seed_{seed}.json", folder / f"seed_{seed}.npz"


@dataclass(frozen=True)
class _Chunk:
    config: CampaignConfig
    scene: SceneBundle  # pickled to worker processes: they neither read nor hash it again
    out: Path
    agent: AgentSpec
    condition: str
    seeds: tuple[int, ...]
    env_factory: EnvFactory
    policy_factory: PolicyFactory


def chunk_episodes(chunk: _Chunk) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """One agent, one condition, a few seeds: each episode's (record, trajectory) as it ends."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    env = chunk.env_factory(chunk.config, chunk.agent, chunk.condition, chunk.scene)
    try:
        for seed in chunk.seeds:
            policy = chunk.policy_factory(chunk.agent, env, seed)
            record, trajectory = run_episode(env, policy, seed)
            yield {"agent": chunk.agent.name, "condition": chunk.condition, **record}, trajectory
    finally:
        env.close()


def save_episode(out: Path, record: dict[str, Any], trajectory: dict[str, np.ndarray]) -> bool:
    """Write one finished episode's files unless it already has them (False then): an episode is
    written once, whichever worker or retry reports it."""
    record_path, trajectory_path = episode_paths(
        out, record["agent"], record["condition"], record["seed"]
    )
    if is_finished(record_path, RECORD_KEYS, warn=False):
        return False
    with atomic_path(trajectory_path) as tmp, open(tmp, "wb") as stream:
        np.savez_compressed(stream, **trajectory)
    write_json_atomic(record_path, record)  # last: its presence marks the episode done
    return True


def _run_chunk(chunk: _Chunk) -> list[dict[str, Any]]:
    """Worker process: run the chunk, saving each episode the moment it ends."""
    records = []
    for record, trajectory in chunk_episodes(chunk):
        save_episode(chunk.out, record, trajectory)
        records.append(record)
    return records


def _check_or_write_campaign(
    config: CampaignConfig, out: Path, identity: dict[str, str]
) -> dict[str, Any]:
    meta_path = out / CAMPAIGN_FILE
    meta = {
        "scene": identity,
        "agents": {a.name: a.source for a in config.agents},
        "agent_renderers": {a.name: a.renderer for a in config.agents if a.renderer},
        "conditions": list(config.conditions),
        "seeds": list(config.seeds),
        "renderer": config.renderer,
        "max_episode_steps": config.max_episode_steps,
        "task": config.task,
        "spawn": config.spawn,
    }
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old["scene"]["sha256"] != identity["sha256"]:
            raise CampaignError(
                f"{meta_path}: this evaluation was run on scene {old['scene']['name']!r} "
                f"({old['scene']['path']}), not {identity['path']}: use another --out"
            )
        settings = ("renderer", "max_episode_steps", "task", "spawn")
        changed = [k for k in settings if old.get(k) != meta[k]]
        if changed:
            earlier = ", ".join(f"{k}={old.get(k)}" for k in changed)
            raise CampaignError(
                f"{meta_path}: earlier episodes used {earlier}; resume with the same settings "
                "or use another --out"
            )
        # Resuming may add agents, conditions or seeds: keep the union, in order.
        meta["agents"] = {**old["agents"], **meta["agents"]}
        meta["agent_renderers"] = {**old.get("agent_renderers", {}), **meta["agent_renderers"]}
        meta["conditions"] = list(dict.fromkeys(old["conditions"] + meta["conditions"]))
        meta["seeds"] = list(dict.fromkeys(old["seeds"] + meta["seeds"]))
    write_json_atomic(meta_path, meta)
    return meta


def run_campaign(
    config: CampaignConfig,
    out: str | Path,
    env_factory: EnvFactory = make_sim_env,
    policy_factory: PolicyFactory = make_policy,
    show_progress: bool = True,
    scene: SceneBundle | None = None,
    ray_address: str | None = None,
) -> Campaign:
    """Run every missing episode of the campaign into ``out`` and return the whole campaign.

    ``scene``: the loaded bundle of ``config.scene`` when the caller holds it; otherwise it is
    loaded here, once for the whole campaign. ``ray_address``: run the chunks as Ray tasks
    (``eval.ray_backend``) on the cluster there (``auto``: the running one; ``""``: a local Ray
    instance) instead of the ``config.workers`` process pool; None (default): the pool.
    """
    from scene_builder.bundle import load_scene

    out = Path(out)
    scene = scene if scene is not None else load_scene(config.scene)
    _check_or_write_campaign(config, out, scene.identity())
    pending = []
    for agent in config.agents:
        for condition in config.conditions:
            todo = [
                s
                for s in config.seeds
                if not is_finished(episode_paths(out, agent.name, condition, s)[0], RECORD_KEYS)
            ]
            for start in range(0, len(todo), SEEDS_PER_CHUNK):
                seeds = tuple(todo[start : start + SEEDS_PER_CHUNK])
                pending.append(
                    _Chunk(config, scene, out, agent, condition, seeds, env_factory, policy_factory)
                )
    total = len(config.agents) * len(config.conditions) * len(config.seeds)
    done_before = total - sum(len(c.seeds) for c in pending)
    _execute(pending, config.workers, total, done_before, show_progress, ray_address)
    campaign = load_campaign(out)
    write_episodes_csv(out / EPISODES_FILE, campaign.records)
    return campaign


def _execute(
    chunks: list[_Chunk],
    workers: int,
    total: int,
    done: int,
    show_progress: bool,
    ray_address: str | None = None,
) -> None:
    from common.progress import progress_bar

    with progress_bar() as progress:
        task = progress.add_task(
            "episodes", total=total, completed=done, status="", visible=show_progress
        )

        def advance(records: list[dict[str, Any]]) -> None:
            wins = sum(r["success"] for r in records)
            last = records[-1] if records else {}
            progress.update(
                task,
                advance=len(records),
                status=f"{last.get('agent', '')} {last.get('condition', '')} {wins}/{len(records)} ok",
            )

        if ray_address is not None:
            from eval.ray_backend import run_chunks_on_ray

            for records in run_chunks_on_ray(chunks, ray_address):
                advance(records)
            return
        if workers <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                advance(_run_chunk(chunk))
            return
        context = multiprocessing.get_context("spawn")
        with context.Pool(processes=min(workers, len(chunks))) as pool:
            for records in pool.imap_unordered(_run_chunk, chunks):
                advance(records)


# --- reading a campaign ---------------------------------------------------------------------------


@dataclass
class Campaign:
    """A loaded evaluation directory: its campaign.json and its episode records."""

    root: Path
    meta: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def agents(self) -> list[str]:
        return list(self.meta["agents"])

    @property
    def conditions(self) -> list[str]:
        return list(self.meta["conditions"])

    @property
    def finished_agents(self) -> list[str]:
        """Agents with at least one finished episode (a resumed campaign may not have them all)."""
        done = {r["agent"] for r in self.records}
        return [a for a in self.agents if a in done]

    def outcomes(
        self, agent: str, condition: str | None = None, key: str = "success"
    ) -> np.ndarray:
        return np.array(
            [
                r[key]
                for r in self.records
                if r["agent"] == agent and (condition is None or r["condition"] == condition)
            ]
        )

    def trajectory(self, agent: str, condition: str, seed: int) -> dict[str, np.ndarray]:
        with np.load(episode_paths(self.root, agent, condition, seed)[1]) as data:
            return {k: data[k] for k in data.files}

    def check_scene(self, scene: str | Path | SceneBundle) -> None:
        """Raise ``CampaignError`` when the campaign was run on another scene (or another version)."""
        identity = scene_identity(scene)
        ran = self.meta["scene"]
        if ran["sha256"] != identity["sha256"]:
            raise CampaignError(
                f"{self.root / CAMPAIGN_FILE}: these episodes were run on scene {ran['name']!r} "
                f"({ran['path']}, scene.json sha256 {ran['sha256'][:12]}), but the scene given is "
                f"{identity['name']!r} ({identity['path']}, sha256 {identity['sha256'][:12]})"
            )


def load_campaign(eval_dir: str | Path) -> Campaign:
    """Read campaign.json and every finished episode record under ``eval_dir``."""
    root = Path(eval_dir)
    meta_path = root / CAMPAIGN_FILE
    if not meta_path.is_file():
        raise CampaignError(f"{meta_path}: not found (is {root} the --out of 'driveenv evaluate'?)")
    try:
        meta = json.loads(meta_path.read_text())
        meta["scene"]["sha256"], meta["agents"], meta["conditions"], meta["seeds"]  # noqa: B018
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CampaignError(f"{meta_path}: not a campaign file ({error})") from None
    records = []
    for agent in meta["agents"]:
        for condition in meta["conditions"]:
            for seed in meta["seeds"]:
                record_path = episode_paths(root, agent, condition, seed)[0]
                if record_path.is_file():
                    records.append(read_record(record_path, RECORD_KEYS))
    return Campaign(root, meta, records)


def write_episodes_csv(path: Path, records: Iterable[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=EPISODE_COLUMNS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for record in records:
        writer.writerow(record)
    write_text_atomic(path, buffer.getvalue())
