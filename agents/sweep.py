"""Training sweeps: one configuration trained once per seed, then one success rate pooled over
the seeds (``driveenv train ALGO ... --seeds 0-7 [--ray [ADDRESS]]``).

One seed's evaluation does not tell two learners apart when runs of the same learner differ by
seed as much as the learners differ (the one-demonstration rows of benchmarks/agent_success.py),
so a comparison trains each over several seeds and pools their evaluation episodes.

The sweep folder OUT holds::

    seed_K/       the usual run folder of ``agents.train.train`` for seed K
    sweep.json    the configuration (seed aside), the evaluation episodes per seed, and per seed
                  its final success over those episodes

After training, each seed's final agent is evaluated on ``episodes`` episodes whose seeds start
at ``EVAL_SEED``: disjoint from training seeds and from the periodic evaluations (100000 on).
The pooled rate counts every seed's episodes together, with a 95% Wilson interval.

Locally the seeds run one after another in this process, each resumable as ``train`` is. With
Ray each seed is one task: the scene bundle (and the demonstrations file) reach the node as
content-addressed blobs (``common.ray_cluster``), the node trains into a temporary folder,
evaluates, and returns the folder, which the driver writes as OUT/seed_K. Either way a seed
already in sweep.json is not run again, so an interrupted sweep resumes by running it again.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agents.errors import AgentError
from agents.train import RUN_FILE, TrainConfig, evaluate_success, load_run_agent, train
from common.atomic import write_json_atomic

EVAL_SEED = 500_000
SWEEP_FILE = "sweep.json"
MAX_RETRIES = 3  # Ray runs a seed again when its worker or node died (not when training raised)


def run_seed(config: TrainConfig, run_dir: Path, episodes: int, scene=None, progress=None) -> dict:
    """Train (or resume) one seed's run in ``run_dir``, then evaluate its final agent."""
    from simulator import make_env

    run = train(config, run_dir, progress=progress, scene=scene)
    agent = load_run_agent(run_dir)
    env = make_env(config.env_config(seed=EVAL_SEED), scene=scene)
    try:
        result = evaluate_success(agent, env, episodes, seed=EVAL_SEED)
    finally:
        env.close()
    return {
        "seed": config.seed,
        "steps": int(run["num_timesteps"]),
        "episodes": episodes,
        "successes": round(result["success_rate"] * episodes),
        "mean_return": result["mean_return"],
    }


def sweep(
    config: TrainConfig,
    seeds: list[int],
    out: str | Path,
    episodes: int = 100,
    ray_address: str | None = None,
    overwrite: bool = False,
    progress=None,
) -> dict[str, Any]:
    """Train ``config`` once per seed into OUT/seed_K and return sweep.json's content.

    ``ray_address``: one Ray task per seed on the cluster there (``auto``: the running one;
    ``""``: a local Ray instance); None: the seeds one after another in this process.
    """
    out = Path(out)
    if episodes < 1:
        raise AgentError(f"episodes={episodes}: must be at least 1")
    config.check()
    if overwrite and out.exists():
        shutil.rmtree(out)
    state = _sweep_state(config, out, episodes)
    todo = [seed for seed in seeds if str(seed) not in state["seeds"]]
    runner = _on_ray if ray_address is not None else _locally
    for result in runner(config, todo, out, episodes, ray_address, progress):
        state["seeds"][str(result["seed"])] = result
        write_json_atomic(out / SWEEP_FILE, state)
    return state


def _sweep_state(config: TrainConfig, out: Path, episodes: int) -> dict[str, Any]:
    """sweep.json of the sweep to resume, or a new one; refuses another configuration."""
    settings = json.loads(json.dumps(dataclasses.asdict(dataclasses.replace(config, seed=0))))
    settings.pop("seed")
    path = out / SWEEP_FILE
    if path.is_file():
        state = json.loads(path.read_text())
        if state.get("config") != settings or state.get("episodes") != episodes:
            raise AgentError(
                f"{path}: holds a sweep with another configuration or episode count; "
                "use --overwrite to replace it or choose another --out"
            )
        return state
    if out.exists() and any(out.iterdir()):
        raise AgentError(f"{out}: exists and is not a sweep; choose another --out")
    return {"algorithm": config.algorithm, "config": settings, "episodes": episodes, "seeds": {}}


def _locally(config, seeds, out, episodes, address, progress) -> Iterator[dict]:
    from simulator.env import load_scene_for

    scene = load_scene_for(config.env_config()) if seeds else None
    for seed in seeds:
        seeded = dataclasses.replace(config, seed=seed)
        yield run_seed(seeded, out / f"seed_{seed}", episodes, scene=scene, progress=progress)


def _on_ray(config, seeds, out, episodes, address, progress) -> Iterator[dict]:
    """One Ray task per seed; each returned run folder is written as OUT/seed_K."""
    if not seeds:
        return
    from common.folder_blobs import Blob, restore_folder
    from common.ray_cluster import FolderSharer, connect

    ray = connect(address)
    sharer = FolderSharer(ray)
    scene = sharer.share(config.scene)
    demos = Path(config.demos) if config.demos else None
    demos_folder = sharer.share(demos.parent, [demos.name]) if demos else None
    task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_remote_seed)
    pending = {
        task.remote(dataclasses.replace(config, seed=s), scene, demos_folder, episodes): s
        for s in seeds
    }
    bar = progress.add_task("seeds", total=len(seeds), status="") if progress else None
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            seed = pending.pop(ready[0])
            try:
                result, digest, data = ray.get(ready[0])
            except ray.exceptions.RayTaskError as error:  # training raised: as it does locally
                raise (error.cause if isinstance(error.cause, Exception) else error) from None
            except ray.exceptions.RayError as error:  # its node or worker died, retries spent
                raise AgentError(
                    f"seed {seed}: lost on the cluster ({type(error).__name__}); finished "
                    "seeds are kept: run the same command again to resume"
                ) from None
            restore_folder(Blob(digest, data), out / f"seed_{seed}")
            if bar is not None:
                rate = result["successes"] / result["episodes"]
                progress.update(bar, advance=1, status=f"seed {seed}: {rate:.0%}")
            yield result
    finally:
        for ref in pending:
            ray.cancel(ref)


def _remote_seed(config: TrainConfig, scene_folder, demos_folder, episodes: int):
    """On a worker: train and evaluate one seed on this node's copies of the scene and demos;
    return the result and the run folder as a blob (digest, bytes)."""
    from common.folder_blobs import pack_folder
    from common.ray_cluster import local_folder
    from scene_builder.bundle import load_scene

    scene = load_scene(local_folder(scene_folder))
    driver_demos = config.demos
    if demos_folder is not None:
        local_demos = local_folder(demos_folder) / Path(driver_demos).name
        config = dataclasses.replace(config, demos=str(local_demos))
    with tempfile.TemporaryDirectory(prefix="driveenv-seed-") as tmp:
        run_dir = Path(tmp) / f"seed_{config.seed}"
        result = run_seed(config, run_dir, episodes, scene=scene)
        if demos_folder is not None:  # run.json names the file on the user's disk, as locally
            run = json.loads((run_dir / RUN_FILE).read_text())
            run["config"]["demos"] = driver_demos
            write_json_atomic(run_dir / RUN_FILE, run)
        blob = pack_folder(run_dir)
    return result, blob.digest, blob.data


def pooled(state: dict[str, Any]) -> dict[str, Any]:
    """Every seed's evaluation episodes together: successes, episodes, rate, 95% Wilson interval."""
    from statsmodels.stats.proportion import proportion_confint

    results = list(state["seeds"].values())
    successes = sum(r["successes"] for r in results)
    episodes = sum(r["episodes"] for r in results)
    low, high = proportion_confint(successes, episodes, alpha=0.05, method="wilson")
    return {
        "seeds": len(results),
        "successes": successes,
        "episodes": episodes,
        "success_rate": successes / episodes,
        "ci_low": float(low),
        "ci_high": float(high),
    }


def sweep_table(state: dict[str, Any]) -> str:
    """Markdown: one row per seed (sorted), then the pooled row."""
    from statsmodels.stats.proportion import proportion_confint

    lines = [
        "| seed | steps | success | 95% interval | mean return |",
        "| ---: | ---: | ---: | --- | ---: |",
    ]
    for key in sorted(state["seeds"], key=int):
        r = state["seeds"][key]
        low, high = proportion_confint(r["successes"], r["episodes"], alpha=0.05, method="wilson")
        lines.append(
            f"| {key} | {r['steps']} | {r['successes']}/{r['episodes']} "
            f"({r['successes'] / r['episodes']:.0%}) | {low:.0%}–{high:.0%} | {r['mean_return']:.2f} |"
        )
    total = pooled(state)
    lines.append(
        f"| all {total['seeds']} | - | {total['successes']}/{total['episodes']} "
        f"({total['success_rate']:.0%}) | {total['ci_low']:.0%}–{total['ci_high']:.0%} | - |"
    )
    return "\n".join(lines)
