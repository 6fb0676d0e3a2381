"""Agents with one interface (SB3's learn/predict/save/load): PPO, SAC, MEow, BC, TDIL, diffusion policy, QSM.

``ALGORITHMS`` maps each ``driveenv train`` name to ``"module:Class"``; classes are imported only
when asked for (``algorithm_class``), so importing ``agents`` stays cheap. ``load_agent(RUN)``
reloads what ``driveenv train ... --out RUN`` saved.
"""

from __future__ import annotations

import importlib

ALGORITHMS: dict[str, str] = {
    "ppo": "agents.sb3:PPOAgent",
    "sac": "agents.sb3:SACAgent",
    "meow": "agents.meow:MEowAgent",
    "bc": "agents.bc:BCAgent",
    "tdil": "agents.tdil:TDILAgent",
    "diffusion": "agents.diffusion_policy:DiffusionPolicyAgent",
    "qsm": "agents.qsm:QSMAgent",
    "dxmi": "agents.dxmi:DxMIAgent",
    # several robots in one scene (driveenv train ... --agents N): agents.marl
    "iql": "agents.marl.agent:IQLAgent",
    "vdn": "agents.marl.agent:VDNAgent",
    "qmix": "agents.marl.agent:QMIXAgent",
    "ddn": "agents.marl.agent:DDNAgent",
    "dmix": "agents.marl.agent:DMIXAgent",
}


def algorithm_class(name: str):
    """The agent class registered as ``name`` (AgentError if unknown)."""
    from agents.errors import AgentError

    if name not in ALGORITHMS:
        raise AgentError(f"unknown algorithm {name!r}: choose one of {', '.join(ALGORITHMS)}")
    module_name, class_name = ALGORITHMS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_agent(run_dir, env=None, trust_pickles: bool = False):
    """The agent saved in ``run_dir`` by ``driveenv train`` (reads run.json and the checkpoint).

    Checkpoints are weights plus JSON and are opened without running code. A run folder saved
    in Stable-Baselines3's pickled format (``agent.zip`` with a ``data`` entry, or
    ``replay_buffer.pkl``) is refused with a ``CheckpointError`` naming the file, unless
    ``trust_pickles=True``: then SB3's loader unpickles it, and a malicious file runs whatever
    code it carries with your permissions. Pass it only for a run you made or trust.
    """
    from agents.train import load_run_agent

    return load_run_agent(run_dir, env=env, trust_pickles=trust_pickles)


__all__ = ["ALGORITHMS", "algorithm_class", "load_agent"]
