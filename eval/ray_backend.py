"""Campaign chunks as Ray tasks: ``driveenv evaluate ... --ray [ADDRESS]``.

The campaign is the one of ``eval.rollouts`` (same chunks, same seeds, same episodes, same files);
only where the chunks run changes. Each (agent, condition, few seeds) chunk is one Ray task.
The nodes of a cluster do not share the user's disk, so:

- the scene bundle and each agent's run folder (run.json and its checkpoint) travel as
  content-addressed blobs (``common.ray_cluster``): put in the object store once, fetched and
  unpacked once per node into its blob cache, where the task finds them by hash;
- a task returns its episodes' records and trajectories instead of writing them, and the driver
  writes each episode's files as its chunk comes back (``eval.rollouts.save_episode``: an
  episode that already has its record is not written again).

A node that dies mid-campaign takes its running tasks with it; Ray runs them again elsewhere
(``max_retries``), and since only the driver writes, and only results Ray returned, no episode
is lost or written twice. Episodes already written when the driver itself stops are kept: the
next run resumes from them like the process backend does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.ray_cluster import FolderSharer, SharedFolder, connect, local_folder
from eval.errors import CampaignError
from eval.rollouts import AgentSpec, chunk_episodes, save_episode

if TYPE_CHECKING:
    from eval.rollouts import _Chunk

# Times Ray runs a task again when its worker or node died (not when the task raised).
MAX_RETRIES = 3
RUN_FILE = "run.json"


def agent_files(agent: AgentSpec) -> list[str]:
    """The files of a run folder an evaluation needs: run.json and its checkpoint."""
    info = agent.run_info()
    if not isinstance(info.get("checkpoint"), str):
        raise CampaignError(f"{Path(agent.source) / RUN_FILE}: names no 'checkpoint' file")
    return [RUN_FILE, info["checkpoint"]]


def rebased(scene, root: Path):
    """``scene`` (a loaded ``SceneBundle``) with its file paths moved from its root to ``root``."""
    old = Path(scene.root)
    paths = ("collision_mesh_path", "visual_mesh_path", "field_dir", "dataset_dir")
    moved = {
        name: root / Path(getattr(scene, name)).relative_to(old)
        for name in paths
        if getattr(scene, name) is not None
    }
    return dataclasses.replace(scene, root=root, **moved)


def _remote_chunk(
    chunk: _Chunk, scene, scene_folder: SharedFolder, agent_folder: SharedFolder | None
) -> list[tuple[dict[str, Any], dict]]:
    """On a worker: the chunk's episodes, run on this node's copies of the scene and agent."""
    scene = rebased(scene, local_folder(scene_folder))
    agent = chunk.agent
    if agent_folder is not None:
        agent = dataclasses.replace(agent, source=str(local_folder(agent_folder)))
    return list(chunk_episodes(dataclasses.replace(chunk, scene=scene, agent=agent)))


def run_chunks_on_ray(chunks: list[_Chunk], address: str) -> Iterator[list[dict[str, Any]]]:
    """Run ``chunks`` as Ray tasks on the cluster at ``address``; write each chunk's episodes
    as it comes back and yield the records written (what the progress bar counts)."""
    if not chunks:
        return
    ray = connect(address)
    sharer = FolderSharer(ray)
    task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_remote_chunk)
    scene = chunks[0].scene  # one campaign, one scene: its object and its files, shared once
    scene_ref, scene_folder = ray.put(scene), sharer.share(scene.root)
    pending = {}
    for chunk in chunks:
        # a run folder travels; a built-in (or a policy factory's own label) is just its name
        on_disk = not chunk.agent.builtin and Path(chunk.agent.source).is_dir()
        agent = sharer.share(chunk.agent.source, agent_files(chunk.agent)) if on_disk else None
        light = dataclasses.replace(chunk, scene=None)
        pending[task.remote(light, scene_ref, scene_folder, agent)] = chunk
    failed: list[str] = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            chunk = pending.pop(ready[0])
            try:
                episodes = ray.get(ready[0])
            except ray.exceptions.RayTaskError as error:  # the task raised: as the pool does
                raise (error.cause if isinstance(error.cause, Exception) else error) from None
            except ray.exceptions.RayError as error:  # its node or worker died, retries spent
                where = f"{chunk.agent.name}/{chunk.condition} seeds {list(chunk.seeds)}"
                failed.append(f"{where}: {type(error).__name__}")
                continue
            out = chunk.out
            yield [
                record for record, trajectory in episodes if save_episode(out, record, trajectory)
            ]
    finally:
        for ref in pending:
            ray.cancel(ref)
    if failed:
        raise CampaignError(
            f"{len(failed)} chunk(s) failed on the cluster after {MAX_RETRIES} retries "
            f"({'; '.join(failed[:3])}); run the same command again to resume"
        )
