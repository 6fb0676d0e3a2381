"""Folders as content-addressed blobs: pack a folder into bytes named by their SHA-256, unpack
them once per machine into a cache folder named by that hash.

This is how scene bundles and agent folders reach machines that do not share the user's disk
(``common.ray_cluster``): the same bytes give the same name, so a node that already holds a
blob neither fetches nor unpacks it again, and a changed file gives a new name instead of a
stale copy. Packing is deterministic (sorted names, no timestamps or owners) for that reason.

Unpacking trusts nothing it receives: the bytes must hash to the name asked for, the name must
be a bare SHA-256 (it becomes a folder name), and every member must be a plain file or folder
that stays inside the target (``tarfile``'s ``data`` filter: no absolute paths, no ``..``, no
links, no devices). A blob is unpacked into a temporary sibling and renamed into place, so two
workers of one node unpacking at once, or one interrupted, leave one complete copy or none.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from common.atomic import atomic_path
from common.errors import DriveEnvError

CACHE_ENV = "DRIVEENV_BLOB_CACHE"
_DIGEST = re.compile(r"[0-9a-f]{64}")


class BlobError(DriveEnvError):
    """A blob that cannot be packed or unpacked: missing files, wrong hash, unsafe members."""


@dataclass(frozen=True)
class Blob:
    """A packed folder: its bytes (an uncompressed tar archive) and their SHA-256."""

    digest: str
    data: bytes


def default_cache_dir() -> Path:
    """Where this machine keeps unpacked blobs: ``$DRIVEENV_BLOB_CACHE`` or ~/.cache/driveenv/blobs."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "driveenv" / "blobs"


def pack_folder(root: str | Path, include: Iterable[str] | None = None) -> Blob:
    """The files under ``root`` (or only ``include``, paths relative to it) as one blob."""
    root = Path(root)
    if not root.is_dir():
        raise BlobError(f"{root}: not a folder")
    if include is None:
        names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    else:
        names = sorted(set(include))
        missing = [n for n in names if not (root / n).is_file()]
        if missing:
            raise BlobError(f"{root}: missing {', '.join(missing)}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in names:
            data = (root / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    return Blob(hashlib.sha256(data).hexdigest(), data)


def cached_folder(digest: str, cache_dir: str | Path | None = None) -> Path:
    """The folder a blob of ``digest`` unpacks to (it may not exist yet)."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise BlobError(f"blob name {digest!r}: not a SHA-256 hex digest")
    return Path(cache_dir or default_cache_dir()) / digest


def unpack_blob(blob: Blob, cache_dir: str | Path | None = None) -> Path:
    """Unpack ``blob`` into the cache (once: an existing copy is reused) and return its folder."""
    target = cached_folder(blob.digest, cache_dir)
    if target.is_dir():
        return target
    tmp = _extract(blob, target.parent)
    try:
        os.rename(tmp, target)
    except OSError as error:
        if not target.is_dir():  # not another worker's finished copy: a real failure
            raise BlobError(
                f"blob {blob.digest[:12]}: cannot move into {target} ({error})"
            ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def restore_folder(blob: Blob, target: str | Path) -> Path:
    """Unpack ``blob`` as the folder ``target``, replacing it atomically (a run folder that a
    node trained, written on the driver's disk)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _extract(blob, target.parent)
    try:
        with atomic_path(target) as staged:
            os.rename(tmp, staged)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _extract(blob: Blob, parent: Path) -> Path:
    """The blob's files in a new temporary folder under ``parent``, after the hash check."""
    if hashlib.sha256(blob.data).hexdigest() != blob.digest:
        raise BlobError(f"blob {blob.digest[:12]}: its bytes do not hash to its name")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{blob.digest[:12]}.", dir=parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(blob.data), mode="r:") as archive:
            archive.extractall(tmp, filter=_plain_member)
    except (tarfile.TarError, OSError) as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BlobError(f"blob {blob.digest[:12]}: cannot unpack into {parent} ({error})") from None
    return tmp


def _plain_member(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
    """Stricter than ``tarfile``'s ``data`` filter, which it applies after: only the relative
    files and folders ``pack_folder`` writes; absolute names and links of any kind are refused."""
    if member.name.startswith(("/", "\\")):
        raise tarfile.AbsolutePathError(member)
    if not (member.isfile() or member.isdir()):
        raise tarfile.SpecialFileError(member)
    return tarfile.data_filter(member, path)
