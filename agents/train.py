"""The training driver behind ``driveenv train``: one loop for every algorithm.

A run directory holds everything that made it and everything it made:

- ``run.json``: algorithm, obs, scene, seed, the full ``TrainConfig`` and environment config,
  status (``running``/``done``), steps done, checkpoint name, and every periodic evaluation
- ``agent.zip`` (SB3 agents) or ``agent.pt`` (torch agents): the latest checkpoint, written
  atomically; ``replay_buffer.pkl`` for off-policy agents so a resumed run keeps its data
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

from agents import algorithm_class
from agents.base import load_checkpoint
from agents.errors import AgentError
from common.atomic import atomic_path, write_json_atomic

RUN_FILE = "run.json"
DEMO_ALGORITHMS = ("bc", "tdil", "diffusion", "dxmi")  # algorithms that learn from demonstrations
OFFLINE_ALGORITHMS = (
    "bc",
    "diffusion",
    "dxmi",
)  # ... and never step the environment while learning


@dataclass
class TrainConfig:
    """Everything ``driveenv train`` needs; saved in RUN/run.json."""

    algorithm: str
    scene: str
    task: str = "goal"
    obs: str = "state"
    steps: int = 50_000
    seed: int = 0
    num_envs: int = 1
    vehicle: str = "car"
    renderer: str = "mesh"
    spawn: str = "random"
    max_episode_steps: int = 200
    lighting: str = "capture"
    image_size: int = 64
    checkpoint_every: int = 10_000
    eval_episodes: int = 20
    demos: str | None = None
    demo_count: int | None = None  # use only the first N successful demonstrations
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    # Torch threads while training. One is the default: the policies are small, and with two
    # threads sharing the cores with PyBullet and the renderer the quick demo's four agents
    # took 243 s instead of 15 s (measured on the 2-core machine with one other busy process).
    threads: int = 1

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
    except json.JSONDecodeError as error:
        raise AgentError(f"{path}: not valid JSON ({error})") from None
    for key in ("algorithm", "config", "checkpoint"):
        if key not in run:
            raise AgentError(f"{path}: missing {key!r}")
    return run


def load_run_agent(run_dir: str | Path, env=None):
    """The agent of a run directory (``agents.load_agent``)."""
    run = read_run(run_dir)
    cls = algorithm_class(run["algorithm"])
    return load_checkpoint(cls, Path(run_dir) / run["checkpoint"], env=env)


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


def _make_training_env(config: TrainConfig):
    from stable_baselines3.common.vec_env import VecMonitor

    from simulator.sb3 import make_sb3_vec

    return VecMonitor(make_sb3_vec(config.env_config(), config.num_envs))


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


def _resume_agent(config: TrainConfig, run_dir: Path, run: dict, env):
    cls = algorithm_class(config.algorithm)
    agent = load_checkpoint(cls, run_dir / run["checkpoint"], env=env)
    buffer = run_dir / "replay_buffer.pkl"
    if buffer.is_file() and hasattr(agent, "load_replay_buffer"):
        agent.load_replay_buffer(buffer)
    if config.algorithm in DEMO_ALGORITHMS and hasattr(agent, "set_demonstrations"):
        agent.set_demonstrations(_select_demos(config))
    if hasattr(agent, "tensorboard_log"):
        agent.tensorboard_log = str(run_dir / "tb")
    return agent


def _save(agent, run_dir: Path, name: str) -> None:
    """Checkpoint (and replay buffer) atomically: SB3 writes a ``.tmp`` path as given."""
    with atomic_path(run_dir / name) as tmp:
        agent.save(tmp)
    if hasattr(agent, "save_replay_buffer") and getattr(agent, "replay_buffer", None) is not None:
        with atomic_path(run_dir / "replay_buffer.pkl") as tmp:
            agent.save_replay_buffer(tmp)


def train(config: TrainConfig, run_dir: str | Path, overwrite: bool = False, progress=None):
    """Train (or resume) the run in ``run_dir``; returns the final run.json content."""
    import torch

    config.check()
    run_dir = Path(run_dir)
    run_file = run_dir / RUN_FILE
    run: dict[str, Any] | None = None
    if run_file.is_file():
        if overwrite:
            shutil.rmtree(run_dir)
        else:
            run = read_run(run_dir)
            if run["config"] != asdict(config):
                raise AgentError(
                    f"{run_dir}: holds a run with another configuration; "
                    "use --overwrite to replace it or choose another --out"
                )
            if run.get("status") == "done":
                return run
    elif run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise AgentError(f"{run_dir}: exists and is not a training run; choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)

    env = _make_training_env(config)
    eval_env = None
    try:
        resumed = run is not None and (run_dir / run["checkpoint"]).is_file()
        agent = (
            _resume_agent(config, run_dir, run, env)
            if resumed
            else _build_agent(config, run_dir, env)
        )
        if not resumed:
            run = {
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
            write_json_atomic(run_file, run)
        from simulator import make_env

        eval_env = make_env(config.env_config(seed=config.seed + 10_000))
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
            start = time.perf_counter()
            if _is_sb3(agent):
                agent.learn(chunk, callback=callback, reset_num_timesteps=False, tb_log_name="tb")
            else:
                agent.learn(chunk, callback=callback)
            done_steps += chunk
            _save(agent, run_dir, run["checkpoint"])
            evaluation = evaluate_success(agent, eval_env, config.eval_episodes, seed=100_000)
            _log_evaluation(agent, evaluation)
            run["evaluations"].append({"steps": done_steps, **evaluation})
            run["num_timesteps"] = done_steps
            run["wall_time_s"] = round(run["wall_time_s"] + time.perf_counter() - start, 2)
            write_json_atomic(run_file, run)
            if progress:
                progress.update(
                    task, completed=done_steps, status=f"success {evaluation['success_rate']:.0%}"
                )
        run["status"] = "done"
        write_json_atomic(run_file, run)
        return run
    finally:
        env.close()
        if eval_env is not None:
            eval_env.close()


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
