"""``driveenv train dmix|ddn|qmix|vdn|iql --agents N``: the multi-agent training driver.

The run directory has the layout of every ``driveenv train`` run (``agents.train``): run.json
with the configuration and every periodic evaluation, and ``agent.pt``, so ``load_agent(RUN)``
reloads the learner. Training proceeds in chunks of ``checkpoint_every`` environment steps (the
team's joint steps; ``agents.train``'s chunk loop); after each the learner is saved and evaluated on ``eval_episodes`` greedy
episodes of a differently seeded environment: team success, robot-robot collision and scene
collision rates. Running the same command again resumes from the last checkpoint with an empty
replay (the episodes are not saved).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents import algorithm_class
from agents.base import load_checkpoint
from agents.errors import AgentError
from agents.marl import MARL_ALGORITHMS
from agents.marl.evaluate import evaluate_team
from agents.train import RUN_FILE, TrainConfig, _new_run, _start_run, _train_in_chunks
from common.atomic import write_json_atomic


def train_marl(
    config: TrainConfig, run_dir: str | Path, overwrite: bool = False, progress=None, scene=None
) -> dict[str, Any]:
    """Train (or resume) the multi-agent run in ``run_dir``; returns the final run.json content."""
    import torch

    from simulator.env import load_scene_for
    from simulator.multi_env import make_multi

    if config.algorithm not in MARL_ALGORITHMS:
        raise AgentError(f"{config.algorithm}: not a multi-agent learner ({MARL_ALGORITHMS})")
    if config.num_envs != 1:
        raise AgentError("--num-envs: the multi-agent learners step one environment")
    run_dir = Path(run_dir)
    run = _start_run(config, run_dir, overwrite)
    if run is not None and run.get("status") == "done":
        return run
    torch.set_num_threads(config.threads)
    scene = scene if scene is not None else load_scene_for(config.env_config())
    env = make_multi(config.env_config(), scene=scene)
    eval_env = make_multi(config.env_config(seed=config.seed + 10_000), scene=scene)
    try:
        cls = algorithm_class(config.algorithm)
        resumed = run is not None and (run_dir / run["checkpoint"]).is_file()
        if resumed:
            agent = load_checkpoint(cls, run_dir / run["checkpoint"], env=env)
        else:
            agent = cls.create(env, seed=config.seed, **config.hyperparameters)
            run = _new_run(config, agent)
            write_json_atomic(run_dir / RUN_FILE, run)
        _train_in_chunks(config, agent, run, run_dir, eval_env, progress, evaluate_team)
        run["status"] = "done"
        write_json_atomic(run_dir / RUN_FILE, run)
        return run
    finally:
        env.close()
        eval_env.close()
