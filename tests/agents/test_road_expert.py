"""The scripted expert keeps its lane on a synthetic street from laterally offset spawns."""

import numpy as np

from agents.experts import make_expert
from common.polyline import Polyline
from simulator import EnvConfig, make_env


def test_expert_finishes_offset_route_spawns_on_a_road(tmp_path_factory):
    from scene_builder.synthetic import make_synthetic_road

    road = make_synthetic_road(tmp_path_factory.mktemp("agent-scenes") / "road", seed=1)
    env = make_env(EnvConfig(scene=road, task="route", spawn="random", seed=3))
    expert = make_expert(env)
    offsets, finals = [], []
    try:
        for seed in range(200, 220):
            _, info = env.reset(seed=seed)
            expert.reset()
            offsets.append(Polyline(env.task.route).project(info["pose"][:2]).distance)
            done = False
            while not done:
                *_, terminated, truncated, info = env.step(expert.action())
                done = terminated or truncated
            finals.append(info)
    finally:
        env.close()
    successes = sum(i["success"] for i in finals)
    assert successes >= 19, f"{successes}/20"
    assert not any(i["collision"] or i["off_road"] for i in finals)
    assert np.mean(offsets) > 0.25  # spawns were offset: the expert had to recover
    # back on the route: on average well inside the 1 m offset range
    assert np.mean([i["mean_lateral_deviation"] for i in finals]) < 0.5
