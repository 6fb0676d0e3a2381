"""Running DriveEnv's work on a Ray cluster: connecting, and sending folders to the nodes.

Ray (https://docs.ray.io) schedules the tasks, moves their arguments and results between machines
and retries a task whose node died; DriveEnv adds only what Ray cannot know: a scene bundle or an
agent folder lives on the user's disk, and the nodes do not share it. ``share_folder`` packs the
folder into a content-addressed blob (``common.folder_blobs``) and puts it in Ray's object store
once per driver; a task receives the small ``SharedFolder`` handle and calls ``local_folder``,
which unpacks it once per node into that node's blob cache and fetches the bytes only when the
node has no copy yet.

``ray`` is an optional dependency (``pip install driveenv[ray]``); nothing here imports it at
module level.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import DriveEnvError
from common.folder_blobs import Blob, cached_folder, pack_folder, unpack_blob


class ClusterError(DriveEnvError):
    """Ray is missing, or the cluster at the given address cannot be reached."""


@dataclass(frozen=True)
class SharedFolder:
    """A folder in the cluster's object store: its content hash and the Ray reference to its
    bytes (nested in this object, so that Ray does not fetch it before the task asks)."""

    digest: str
    ref: Any
    size: int


def add_ray_flag(parser, what: str) -> None:
    """``--ray [ADDRESS]`` on a command: ``ADDRESS`` a cluster (``auto``: the one ``ray start``
    joined on this machine), no value: a local Ray instance; absent (None): no Ray."""
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help=f"run {what} as Ray tasks: on the cluster at ADDRESS (auto: the running one), "
        "or on a local Ray instance without ADDRESS",
    )


def import_ray():
    """The ``ray`` module, or a ``ClusterError`` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "--ray needs the ray package: pip install 'driveenv[ray]' (on every node)"
        ) from None
    return ray


def connect(address: str | None):
    """Join the Ray cluster at ``address`` (``auto``: the one started with ``ray start`` on this
    machine), or start a local Ray instance when ``address`` is None or empty. A session already
    connected (a test's cluster, an outer script) is used as it is. Returns the ``ray`` module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    try:
        if address:
            _check_reachable(address)
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ClusterError(
            f"--ray {address or ''}: cannot start or reach {where} ({first})"
        ) from None
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, not after Ray's minutes of retries, when nothing listens at HOST:PORT
    (``auto`` and ``ray://`` addresses are left to Ray)."""
    host, _, port = address.rpartition(":")
    if not host or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise ClusterError(
            f"--ray {address}: no Ray head answers there ({error.strerror or error}); "
            "start one with 'ray start --head' or give its address"
        ) from None


class FolderSharer:
    """Puts each distinct content into the object store once per driver: a folder is packed once
    (by path and file list), and folders with the same bytes share one object (by hash)."""

    def __init__(self, ray):
        self.ray = ray
        self._digests: dict[tuple[str, tuple[str, ...] | None], str] = {}
        self._shared: dict[str, SharedFolder] = {}

    def share(self, root: str | Path, include: list[str] | None = None) -> SharedFolder:
        key = (str(Path(root).resolve()), None if include is None else tuple(sorted(include)))
        if key not in self._digests:
            blob = pack_folder(root, include)
            if blob.digest not in self._shared:
                ref = self.ray.put(blob.data)
                self._shared[blob.digest] = SharedFolder(blob.digest, ref, len(blob.data))
            self._digests[key] = blob.digest
        return self._shared[self._digests[key]]


def local_folder(folder: SharedFolder, cache_dir: str | Path | None = None) -> Path:
    """On a worker: the folder's copy in this node's cache, fetched and unpacked if missing."""
    target = cached_folder(folder.digest, cache_dir)
    if target.is_dir():
        return target
    import ray

    return unpack_blob(Blob(folder.digest, ray.get(folder.ref)), cache_dir)
