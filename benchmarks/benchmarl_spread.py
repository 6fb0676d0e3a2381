"""An outside reference for the MPE rows of ``benchmarks/multi_agent.py``: BenchMARL's QMIX and VDN.

BenchMARL (Bettini et al. 2024) on PettingZoo MPE ``simple_spread`` with the settings of our
MPE rows: 3 agents, 25 cycles, local_ratio 0.5, discrete actions, ``--frames`` environment
steps, about one gradient step (batch 128) per 8 steps, 30 greedy evaluation episodes at the
end. BenchMARL logs the evaluation return averaged over the agents; the table gives it times
3, the team return of our rows (the sum of the agents' rewards).

BenchMARL is not a DriveEnv dependency: its torchrl pulls a CUDA torchvision build whose ops
fail on CPU torch (DESIGN.md), so install it beside the environment, without dependencies:

    .venv/bin/pip install --no-deps --target /tmp/benchmarl-site benchmarl==1.5.2 \\
        torchrl==0.11.1 tensordict==0.11.0 hydra-core==1.3.8 omegaconf==2.3.1 \\
        antlr4-python3-runtime==4.9.3 pyvers==0.2.3 orjson==3.13.0
    PYTHONPATH=/tmp/benchmarl-site .venv/bin/python benchmarks/benchmarl_spread.py --frames 5000

torchrl 0.11 still imports MPE from ``pettingzoo.mpe``, which now lives in the ``mpe2`` package;
the script points the old name at the new one before BenchMARL loads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

N_AGENTS = 3


def run(algorithm: str, frames: int, seed: int, out: Path) -> dict:
    import mpe2.all_modules
    import torch

    sys.modules["pettingzoo.mpe"] = types.ModuleType("pettingzoo.mpe")
    sys.modules["pettingzoo.mpe.all_modules"] = mpe2.all_modules
    from benchmarl.algorithms import QmixConfig, VdnConfig
    from benchmarl.environments import PettingZooTask
    from benchmarl.experiment import Experiment, ExperimentConfig
    from benchmarl.models.mlp import MlpConfig

    torch.set_num_threads(1)
    task = PettingZooTask.SIMPLE_SPREAD.get_from_yaml()
    task.config.update({"max_cycles": 25, "N": N_AGENTS, "local_ratio": 0.5})
    config = ExperimentConfig.get_from_yaml()
    config.prefer_continuous_actions = False
    config.max_n_frames = frames
    config.off_policy_collected_frames_per_batch = 1000
    config.off_policy_n_envs_per_worker = 1
    config.off_policy_n_optimizer_steps = 125
    config.off_policy_train_batch_size = 128
    config.evaluation_interval = frames
    config.evaluation_episodes = 30
    config.loggers = ["csv"]
    config.render = False
    config.save_folder = str(out)
    config.checkpoint_at_end = False
    algo = {"qmix": QmixConfig, "vdn": VdnConfig}[algorithm].get_from_yaml()
    start = time.process_time()
    experiment = Experiment(
        task=task,
        algorithm_config=algo,
        model_config=MlpConfig.get_from_yaml(),
        critic_model_config=MlpConfig.get_from_yaml(),
        seed=seed,
        config=config,
    )
    experiment.run()
    scalars = Path(experiment.folder_name) / Path(experiment.folder_name).name / "scalars"
    last = (scalars / "eval_reward_episode_reward_mean.csv").read_text().split()[-1]
    return {
        "team_return": N_AGENTS * float(last.split(",")[1]),
        "cpu_minutes": (time.process_time() - start) / 60.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-benchmarl")
    parser.add_argument("--algorithms", nargs="+", default=["qmix", "vdn"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--frames", type=int, default=5000)
    args = parser.parse_args()

    from results import load, markdown_table, tee, write_section

    from common.atomic import write_json_atomic

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "results.json"
    results = json.loads(cache.read_text()) if cache.is_file() else {}
    load_at_start = load()
    for algorithm in args.algorithms:
        for seed in args.seeds:
            key = f"{algorithm}@s{seed}@{args.frames}"
            if key not in results:
                results[key] = run(algorithm, args.frames, seed, out)
                write_json_atomic(cache, results)
    rows = [
        [key.split("@")[0], key.split("@")[1], value["team_return"], value["cpu_minutes"]]
        for key, value in results.items()
        if key.endswith(f"@{args.frames}")
    ]
    with tee() as printed:
        print(
            f"BenchMARL 1.5.2 on MPE simple_spread (3 agents, 25 cycles, local_ratio 0.5), "
            f"{args.frames} frames: team return of 30 greedy episodes (3 x BenchMARL's "
            "per-agent mean), to set beside the MPE rows of multi_agent.\n"
        )
        print(markdown_table(["learner", "seed", "team return", "CPU min"], rows))
    write_section("multi_agent_benchmarl", printed.getvalue(), load_at_start=load_at_start)


if __name__ == "__main__":
    main()
