"""The training driver behind ``driveenv train``: one loop for every algorithm.

A run directory holds everything that made it and everything it made:

- ``run.json``: algorithm, obs, scene, seed, the full ``TrainConfig`` and environment config,
  status (``running``/``done``), steps done, checkpoint name, and every periodic evaluation
- ``agent.zip`` (SB3 agents: weights + JSON, ``agents.persistence``) or ``agent.pt`` (torch
  agents): the latest checkpoint, written atomically; ``replay_buffer.npz`` (arrays, no pickle)
  for off-policy agents so a resumed run keeps its data
- ``tb/``: TensorBoard logs (SB3's logger; evaluation success rate under ``eval/``)

Training proceeds in chunks of ``checkpoint_every`` steps; after each chunk the agent is saved
and evaluated (success rate over ``eval_episodes`` episodes of a separate, differently seeded
environment), so an interrupted run loses at most one chunk: running the same command again
resumes from the last checkpoint. A different configuration on an existing run is refused
unless ``overwrite`` is given.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from agents import ALGORITHMS, algorithm_class
from agents.base import load_checkpoint
from agents.errors import AgentError
from agents.persistence import restore_replay_buffer, save_run_replay_buffer
from common.atomic import atomic_path, write_json_atomic
from common.config_cli import option

RUN_FILE = "run.json"
CHECKPOINT_NAMES = ("agent.zip", "agent.pt")
DEMO_ALGORITHMS = ("bc", "tdil", "diffusion", "dxmi")  # algorithms that learn from demonstrations
OFFLINE_ALGORITHMS = (
    "bc",
    "diffusion",
    "dxmi",
)  # ... and never step the environment while learning


@dataclass
class TrainConfig:
    """Everything ``driveenv train`` needs; saved in RUN/run.json.

    The environment fields (``scene`` ... ``image_size``, ``seed``) and ``env_options`` (any
    other ``EnvConfig`` field) make the training env; the CLI fills them from the one
    environment-options group, so ``driveenv train`` has ``EnvConfig``'s defaults. The Python
    defaults of ``spawn`` and ``max_episode_steps`` stay those the demo and the agent benchmarks
    were measured with.
    """

    algorithm: str = option(help="the algorithm to train", choices=ALGORITHMS, metavar="ALGO")
    scene: str = option(help="scene bundle directory")
    task: str = "goal"
    obs: str = "state"
    steps: int = option(50_000, "environment steps to train for (BC, diffusion: gradient steps)")
    seed: int = 0
    num_envs: int = option(1, "parallel environments, rendered in one batch")
    vehicle: str = "car"
    renderer: str = "mesh"
    spawn: str = "random"
    max_episode_steps: int = 200
    lighting: str = "capture"
    image_size: int = 64
    checkpoint_every: int = option(10_000, "steps between checkpoints and evaluations")
    eval_episodes: int = option(20, "episodes per periodic evaluation")
    demos: str | None = option(None, "demonstrations .npz (bc, tdil, diffusion)")
    demo_count: int | None = option(None, "use only the first N successful demonstrations")
    hyperparameters: dict[str, Any] = option(
        factory=dict, help="algorithm hyper-parameter (repeatable; JSON value)", flag="hp"
    )
    # Torch threads while training. One is the default: the policies are small and share the
    # cores with PyBullet and the renderer.
    threads: int = option(1, "torch threads (small policies train fastest on one)")
    env_options: dict[str, Any] = field(default_factory=dict)  # further EnvConfig fields

    def env_config(self, seed: int | None = None):
        from simulator import EnvConfig

        return EnvConfig(
            scene=self.scene,
            vehicle=self.vehicle,
            obs=self.obs,
            renderer=self.renderer if "rgb" in self.obs or "depth" in self.obs else "none",
            task=self.task,
            lighting=self.lighting,
            image_size=self.image_size,
            spawn=self.spawn,
            max_episode_steps=self.max_episode_steps,
            seed=self.seed if seed is None else seed,
            **self.env_options,
        )

    def check(self) -> None:
        algorithm_class(self.algorithm)  # AgentError for an unknown name
        for name in ("steps", "num_envs", "checkpoint_every", "eval_episodes", "threads"):
            if int(getattr(self, name)) < 1:
                raise AgentError(f"{name}={getattr(self, name)}: must be at least 1")
        if self.algorithm in DEMO_ALGORITHMS and not self.demos:
            raise AgentError(f"{self.algorithm} learns from demonstrations: give --demos FILE")
        self.env_config()  # ConfigError for a bad environment option

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def checkpoint_name(agent) -> str:
    """SB3 agents save a zip archive, torch agents a ``.pt`` file."""
    return "agent.zip" if _is_sb3(agent) else "agent.pt"


def read_run(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise AgentError(f"{run_dir}: not a training run (no {RUN_FILE})")
    try:
        run = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AgentError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(run, dict):
        raise AgentError(f"{path}: not a run description (a JSON object)")
    for key, kind in (("algorithm", str), ("config", dict), ("checkpoint", str)):
        if not isinstance(run.get(key), kind):
            raise AgentError(f"{path}: missing {key!r} (a {kind.__name__})")
    if run["checkpoint"] not in CHECKPOINT_NAMES:  # a file of the run, never a path elsewhere
        raise AgentError(f"{path}: checkpoint must be one of {', '.join(CHECKPOINT_NAMES)}")
    return run


def load_run_agent(run_dir: str | Path, env=None, trust_pickles: bool = False):
    """The agent of a run directory (``agents.load_agent``; ``trust_pickles``: see there)."""
    run = read_run(run_dir)
    cls = algorithm_class(run["algorithm"])
    path = Path(run_dir) / run["checkpoint"]
    return load_checkpoint(cls, path, env=env, trust_pickles=trust_pickles)


def evaluate_success(agent, env, episodes: int, seed: int) -> dict[str, float]:
    """Success rate and mean return of ``agent`` (deterministic) over ``episodes`` episodes."""
    successes, returns = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        if hasattr(agent, "reset"):
            agent.reset()
        done, total, info = False, 0.0, {}
        while not done:
            action, _ = agent.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            done = terminated or truncated
        successes.append(bool(info.get("success", False)))
        returns.append(total)
    return {"success_rate": float(np.mean(successes)), "mean_return": float(np.mean(returns))}


def _select_demos(config: TrainConfig):
    from agents.demos import load_demos

    trajectories = [t for t in load_demos(config.demos) if t.success]
    if not trajectories:
        raise AgentError(f"{config.demos}: holds no successful demonstration")
    if config.algorithm == "tdil":
        return trajectories[:1]  # TDIL learns from exactly one demonstration
    if config.demo_count is not None:
        if config.demo_count > len(trajectories):
            raise AgentError(
                f"demo_count={config.demo_count}: {config.demos} has {len(trajectories)} successful"
            )
        trajectories = trajectories[: config.demo_count]
    return trajectories


def _make_training_env(config: TrainConfig, scene):
    from stable_baselines3.common.vec_env import VecMonitor

    from simulator.sb3 import make_sb3_vec

    return VecMonitor(make_sb3_vec(config.env_config(), config.num_envs, scene=scene))


def _build_agent(config: TrainConfig, run_dir: Path, env):
    cls = algorithm_class(config.algorithm)
    kwargs = dict(config.hyperparameters)
    if config.algorithm in DEMO_ALGORITHMS:
        kwargs["demos"] = _select_demos(config)
    if _is_off_policy(cls):  # a buffer larger than the run would only cost memory
        kwargs.setdefault("buffer_size", config.steps)
    return cls.create(env, seed=config.seed, tensorboard_log=str(run_dir / "tb"), **kwargs)


def _is_off_policy(cls) -> bool:
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    return issubclass(cls, OffPolicyAlgorithm)


def _resume_agent(config: TrainConfig, run_dir: Path, run: dict, env, trust_pickles=False):
    cls = algorithm_class(config.algorithm)
    path = run_dir / run["checkpoint"]
    agent = load_checkpoint(cls, path, env=env, trust_pickles=trust_pickles)
    restore_replay_buffer(agent, run_dir, trust_pickles)
    if config.algorithm in DEMO_ALGORITHMS and hasattr(agent, "set_demonstrations"):
        agent.set_demonstrations(_select_demos(config))
    if hasattr(agent, "tensorboard_log"):
        agent.tensorboard_log = str(run_dir / "tb")
    return agent


def _save(agent, run_dir: Path, name: str) -> None:
    """Checkpoint (and replay buffer) atomically: SB3 writes a ``.tmp`` path as given."""
    with atomic_path(run_dir / name) as tmp:
        agent.save(tmp)
    save_run_replay_buffer(agent, run_dir)


def train(
    config: TrainConfig,
    run_dir: str | Path,
    overwrite: bool = False,
    progress=None,
    scene=None,
    trust_pickles: bool = False,
):
    """Train (or resume) the run in ``run_dir``; returns the final run.json content.

    ``scene``: the loaded ``SceneBundle`` of ``config.scene`` when the caller holds it; otherwise
    it is loaded here once, and the training and evaluation environments share it.
    ``trust_pickles`` resumes a run saved in the older pickled format (``agents.load_agent``
    says what it risks).
    """
    import torch

    from simulator.env import load_scene_for

    run_dir = Path(run_dir)
    run = _start_run(config, run_dir, overwrite)
    if run is not None and run.get("status") == "done":
        return run
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)

    scene = scene if scene is not None else load_scene_for(config.env_config())
    env = _make_training_env(config, scene)
    eval_env = None
    try:
        resumed = run is not None and (run_dir / run["checkpoint"]).is_file()
        agent = (
            _resume_agent(config, run_dir, run, env, trust_pickles)
            if resumed
            else _build_agent(config, run_dir, env)
        )
        if not resumed:
            run = _new_run(config, agent)
            write_json_atomic(run_dir / RUN_FILE, run)
        from simulator import make_env

        eval_env = make_env(config.env_config(seed=config.seed + 10_000), scene=scene)
        _train_in_chunks(config, agent, run, run_dir, eval_env, progress)
        run["status"] = "done"
        write_json_atomic(run_dir / RUN_FILE, run)
        return run
    finally:
        env.close()
        if eval_env is not None:
            eval_env.close()


def _start_run(config: TrainConfig, run_dir: Path, overwrite: bool) -> dict[str, Any] | None:
    """Check ``config`` and make ``run_dir``; the run.json of a run to resume (None: start
    afresh). Refuses a folder holding another configuration or something else."""
    config.check()
    run = _existing_run(config, run_dir, overwrite)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run


def _existing_run(config: TrainConfig, run_dir: Path, overwrite: bool) -> dict[str, Any] | None:
    """The run.json of a run to resume (None: start afresh); refuses another configuration."""
    if (run_dir / RUN_FILE).is_file():
        if overwrite:
            shutil.rmtree(run_dir)
            return None
        run = read_run(run_dir)
        if run["config"] != asdict(config):
            raise AgentError(
                f"{run_dir}: holds a run with another configuration; "
                "use --overwrite to replace it or choose another --out"
            )
        return run
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise AgentError(f"{run_dir}: exists and is not a training run; choose another --out")
    return None


def _new_run(config: TrainConfig, agent) -> dict[str, Any]:
    return {
        "algorithm": config.algorithm,
        "obs": config.obs,
        "scene": str(config.scene),
        "seed": config.seed,
        "config": asdict(config),
        "env_config": config.env_config().to_dict(),
        "checkpoint": checkpoint_name(agent),
        "status": "running",
        "num_timesteps": 0,
        "wall_time_s": 0.0,
        "evaluations": [],
    }


def _train_in_chunks(
    config: TrainConfig, agent, run: dict, run_dir: Path, eval_env, progress, evaluate=None
):
    """Learn ``checkpoint_every`` steps at a time; save, evaluate and record after each chunk.

    ``evaluate(agent, env, episodes, seed)``: a dict with ``success_rate`` (default
    ``evaluate_success``; the multi-agent driver scores teams). An agent whose ``learn`` ends on
    an episode boundary (``whole_episodes``) counts the steps it actually took.
    """
    evaluate = evaluate or evaluate_success
    done_steps = int(run["num_timesteps"])
    task = (
        progress.add_task(
            f"train {config.algorithm}", total=config.steps, completed=done_steps, status=""
        )
        if progress
        else None
    )
    callback = _progress_callback(progress, task) if progress else None
    while done_steps < config.steps:
        chunk = min(config.checkpoint_every, config.steps - done_steps)
        start, before = time.perf_counter(), getattr(agent, "num_timesteps", 0)
        if _is_sb3(agent):
            agent.learn(chunk, callback=callback, reset_num_timesteps=False, tb_log_name="tb")
        else:
            agent.learn(chunk, callback=callback)
        whole = getattr(agent, "whole_episodes", False)
        done_steps += agent.num_timesteps - before if whole else chunk
        _save(agent, run_dir, run["checkpoint"])
        evaluation = evaluate(agent, eval_env, config.eval_episodes, seed=100_000)
        _log_evaluation(agent, evaluation)
        run["evaluations"].append({"steps": done_steps, **evaluation})
        run["num_timesteps"] = done_steps
        run["wall_time_s"] = round(run["wall_time_s"] + time.perf_counter() - start, 2)
        write_json_atomic(run_dir / RUN_FILE, run)
        if progress:
            progress.update(
                task, completed=done_steps, status=f"success {evaluation['success_rate']:.0%}"
            )


def _is_sb3(agent) -> bool:
    from stable_baselines3.common.base_class import BaseAlgorithm

    return isinstance(agent, BaseAlgorithm)


def _log_evaluation(agent, evaluation: dict[str, float]) -> None:
    logger = getattr(agent, "logger", None)
    if logger is None or not hasattr(logger, "record"):
        return
    logger.record("eval/success_rate", evaluation["success_rate"])
    logger.record("eval/mean_return", evaluation["mean_return"])
    logger.dump(getattr(agent, "num_timesteps", 0))


def _progress_callback(progress, task):
    """An SB3 callback (or a plain one for torch agents) that advances the progress bar."""
    from stable_baselines3.common.callbacks import BaseCallback

    class ProgressCallback(BaseCallback):
        def _on_step(self) -> bool:
            progress.advance(task, self.training_env.num_envs)
            return True

        def __call__(self, agent) -> bool:  # torch agents call it once per step
            progress.advance(task, 1)
            return True

    return ProgressCallback()
