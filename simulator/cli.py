"""Sub-commands of ``driveenv`` from simulator: drive, rollout."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from common.commands import add_command
from common.config_cli import add_config, make_config, option
from simulator.errors import SimulatorError

# ``env -> policy`` for ``--policy expert``, set by the top-level CLI (see ``make_policy``).
EXPERT_FACTORY = None
# ``run_dir -> (team policy, EnvConfig)`` for ``rollout --agents N --team RUN``, set by agents.cli.
TEAM_FACTORY = None
# ``run_dir -> (obs -> action, the run's obs)`` for ``rollout --agent RUN``, set by agents.cli.
AGENT_FACTORY = None


ENV_OPTIONS = "environment options (simulator.config.EnvConfig)"

ROLLOUT_EXAMPLES = """
  driveenv rollout assets/scenes/bird --policy expert --out runs/bird_expert.mp4
  driveenv rollout runs/synthetic --policy random --renderer mesh --episodes 3 --out random.mp4
  driveenv rollout assets/scenes/bird --renderer field --lighting random --out field.mp4 --overwrite
  driveenv rollout assets/scenes/bird --agents 2 --team runs/dmix --episodes 3 --out team.mp4
  driveenv rollout assets/scenes/street --task route --spawn random --agent runs/ppo --out ppo.mp4
"""


@dataclass
class RolloutOptions:
    """``driveenv rollout``'s own options (the environment's are EnvConfig's)."""

    out: str = option(help="video file to write (.mp4)")
    policy: str = option("expert", "who drives", choices=("expert", "random"))
    episodes: int = option(1, "episodes to record, seeded seed, seed+1, ...")
    fps: int = option(10, "frames per second of the video")
    overwrite: bool = option(False, "replace an existing video")
    team: str | None = option(
        None, "with --agents N: a run of driveenv train iql|vdn|qmix|ddn|dmix"
    )
    agent: str | None = option(
        None, "a run of driveenv train that drives (instead of --policy), with its observations"
    )


def register(subparsers) -> None:
    """Add this module's sub-commands to the ``driveenv`` parser."""
    add_command(
        subparsers,
        "rollout",
        _rollout,
        help="Drive episodes with a random or expert policy and write a video "
        "(camera view beside a top-down map with the trajectory); no display needed.",
        examples=ROLLOUT_EXAMPLES,
        options=lambda parser: _camera_options(parser, RolloutOptions),
    )
    add_command(
        subparsers,
        "drive",
        _drive,
        help="Drive a vehicle with the keyboard in a window (needs a display): "
        "arrow keys or W/A/S/D, R resets, Q quits.",
        examples="""
  driveenv drive assets/scenes/bird
  driveenv drive runs/synthetic --vehicle diffdrive --lighting night
""",
        options=_camera_options,
    )


def add_env_options(parser, include=None, exclude=(), scene_positional: bool = False) -> None:
    """The one environment-options group (EnvConfig's fields, defaults and help), shared by
    ``train``, ``demos``, ``evaluate``, ``rollout`` and ``drive``."""
    from simulator.config import EnvConfig

    add_config(
        parser,
        EnvConfig,
        include=include,
        exclude=exclude,
        positional=("scene",) if scene_positional else (),
        required=() if scene_positional else ("scene",),
        title=ENV_OPTIONS,
    )


def _camera_options(parser, options=None) -> None:
    """The scene (positional) and every environment option but ``obs``: the video and the
    window show the camera, and the expert drives from the state."""
    add_env_options(parser, exclude=("obs",), scene_positional=True)
    if options is not None:
        add_config(parser, options)


def _config(args):
    from simulator.config import EnvConfig

    return make_config(EnvConfig, args, obs="rgb+state")


def make_policy(name: str, env):
    """``obs -> action``: uniform random, or the expert that the ``driveenv`` command supplies.

    The simulator cannot import ``agents`` (imports flow one way), so the top-level CLI hands
    the scripted expert in through ``EXPERT_FACTORY``; without one the straight-line
    controller drives.
    """
    if name == "random":
        return lambda obs: env.action_space.sample()
    if EXPERT_FACTORY is None:
        from simulator.controllers import StraightLineController

        return StraightLineController(env)
    expert = EXPERT_FACTORY(env)
    predict = expert.predict if hasattr(expert, "predict") else expert

    def act(obs):
        action = predict(obs)
        return action[0] if isinstance(action, tuple) else action

    return act


def _rollout(args) -> int:
    from common.progress import progress_bar
    from simulator.env import make_env
    from simulator.video import VideoFile, checked_video_path

    if args.agents > 1 or args.team:  # several robots: simulator.multi_rollout
        from simulator.multi_rollout import team_rollout

        return team_rollout(args, _config(args), TEAM_FACTORY)
    out = checked_video_path(args.out, args.overwrite, args.episodes)
    config, policy = _config(args), None
    if args.agent:
        policy, obs = AGENT_FACTORY(args.agent)
        config = replace(config, obs=obs)
    env = make_env(config, render_mode="rgb_array")
    env.action_space.seed(args.seed)
    policy = policy or make_policy(args.policy, env)
    outcomes = []
    try:
        with progress_bar() as progress, VideoFile(out, args.fps) as video:
            task = progress.add_task("rollout", total=args.episodes, status="")
            for episode in range(args.episodes):
                obs, info = env.reset(seed=args.seed + episode)
                while True:
                    video.write(env.render())
                    obs, _, terminated, truncated, info = env.step(policy(obs))
                    if terminated or truncated:
                        video.write(env.render(), repeat=args.fps)  # hold the last frame 1 s
                        break
                outcome = (
                    "success"
                    if info["success"]
                    else "collision"
                    if info["collision"]
                    else "off road"
                    if info["off_road"]
                    else "time out"
                )
                outcomes.append(outcome)
                progress.update(task, advance=1, status=outcome)
    finally:
        env.close()
    summary = ", ".join(f"{outcomes.count(o)} {o}" for o in sorted(set(outcomes)))
    print(f"wrote {out} ({args.episodes} episode(s): {summary})")
    return 0


def _drive(args) -> int:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise SimulatorError(
            "driveenv drive needs a display (DISPLAY is not set); "
            "use 'driveenv rollout SCENE --out video.mp4' to record an episode instead"
        )
    import matplotlib

    try:
        matplotlib.use("TkAgg")
        import matplotlib.pyplot as plt
    except (ImportError, RuntimeError) as error:
        raise SimulatorError(f"no interactive window toolkit for driving ({error})") from None
    import numpy as np

    from simulator.env import make_env

    env = make_env(_config(args), render_mode="rgb_array")
    keys = {
        "up": (1, 1.0),
        "w": (1, 1.0),
        "down": (1, -1.0),
        "s": (1, -1.0),
        "left": (0, 1.0),
        "a": (0, 1.0),
        "right": (0, -1.0),
        "d": (0, -1.0),
    }
    command = np.zeros(2)
    state = {"quit": False}

    def on_key(event, pressed: bool) -> None:
        if event.key in keys:
            axis, value = keys[event.key]
            command[axis] = value if pressed else 0.0
        elif pressed and event.key == "r":
            env.reset()
        elif pressed and event.key == "q":
            state["quit"] = True

    figure = plt.figure("DriveEnv")
    figure.canvas.mpl_connect("key_press_event", lambda e: on_key(e, True))
    figure.canvas.mpl_connect("key_release_event", lambda e: on_key(e, False))
    env.reset(seed=args.seed)
    picture = plt.imshow(env.render())
    plt.axis("off")
    try:
        while not state["quit"] and plt.fignum_exists(figure.number):
            action = command.copy()
            if args.vehicle == "diffdrive":  # forward/turn -> wheel speeds
                action = np.clip([command[1] - command[0], command[1] + command[0]], -1, 1)
            _, _, terminated, truncated, _ = env.step(action)
            picture.set_data(env.render())
            plt.pause(env.config.control_dt)
            if terminated or truncated:
                plt.pause(1.0)
                env.reset()
    finally:
        env.close()
        plt.close(figure)
    return 0
