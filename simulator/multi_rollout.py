"""``driveenv rollout SCENE --agents N``: a video of several robots (top-down map, one colour each).

Who drives: ``--team RUN`` (a run of ``driveenv train iql|vdn|qmix|ddn|dmix``; the agents
package hands its loader in through ``simulator.cli.TEAM_FACTORY``, since the simulator cannot
import agents), or ``--policy random``, or ``--policy expert``: every robot turns toward its
own goal and drives there, blind to the others (the baseline a learning team must beat).
The video is written by ``simulator.video`` (a temporary name, renamed into place when complete).
"""

from __future__ import annotations

import math
from pathlib import Path

from simulator.errors import SimulatorError
from simulator.multi_env import DISCRETE_ACTIONS, make_multi
from simulator.video import VideoFile, checked_video_path

HOLD_SECONDS = 1  # the last frame of an episode stays this long


def head_for_goal(env):
    """``observations -> actions``: each robot turns to its goal, then drives (ignores others)."""

    def act(observations):
        actions = {}
        for agent, obs in observations.items():
            state = obs["state"]
            bearing = math.atan2(state[4], state[3])
            distance = state[2] * env.arena_size
            steer = 0.0 if abs(bearing) < 0.2 else math.copysign(1.0, bearing)
            speed = 0.0 if abs(bearing) > 0.8 else (0.5 if distance < env.spec.length else 1.0)
            actions[agent] = DISCRETE_ACTIONS.index((steer, speed))
        return actions

    return act


def random_team(env):
    return lambda observations: {a: env.action_space(a).sample() for a in observations}


def write_team_video(env, act, out: Path, episodes: int, seed: int, fps: int) -> list[dict]:
    """Record ``episodes`` episodes of ``env`` driven by ``act``; their ``episode_stats``."""
    outcomes = []
    with VideoFile(out, fps) as video:
        for episode in range(episodes):
            observations, _ = env.reset(seed=seed + episode)
            if hasattr(act, "reset"):
                act.reset()
            while True:
                frame = env.render()
                video.write(frame)
                if not env.agents:
                    video.write(frame, repeat=HOLD_SECONDS * fps)
                    break
                observations = env.step(act(observations))[0]
            outcomes.append(dict(env.episode_stats))
    return outcomes


def team_rollout(args, config, team_factory) -> int:
    """The ``driveenv rollout --agents N`` command (``args``: the parsed rollout options)."""
    from dataclasses import replace

    out = checked_video_path(args.out, args.overwrite, args.episodes)
    team = None
    if args.team:
        if team_factory is None:
            raise SimulatorError("--team needs the agents package (run the driveenv command)")
        team, trained = team_factory(args.team)
        config = replace(trained, scene=config.scene, seed=config.seed)
    else:
        config = replace(config, obs="state")
    env = make_multi(config, render_mode="rgb_array")
    try:
        if team is None:
            act = head_for_goal(env) if args.policy == "expert" else random_team(env)
        else:
            act = team
        outcomes = write_team_video(env, act, out, args.episodes, args.seed, args.fps)
    finally:
        env.close()
    succeeded = sum(o["team_success"] for o in outcomes)
    touched = sum(o["robot_collisions"] > 0 for o in outcomes)
    print(
        f"wrote {out} ({len(outcomes)} episode(s): team success {succeeded}, "
        f"robot-robot collisions {touched})"
    )
    return 0
