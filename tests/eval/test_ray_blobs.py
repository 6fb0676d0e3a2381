"""Folders as content-addressed blobs (common.folder_blobs): what reaches a Ray node is named by
its hash, unpacked once, and confined to the node's cache folder."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from common.folder_blobs import (
    Blob,
    BlobError,
    cached_folder,
    pack_folder,
    restore_folder,
    unpack_blob,
)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "run"
    (root / "sub").mkdir(parents=True)
    (root / "run.json").write_text('{"checkpoint": "agent.zip"}')
    (root / "agent.zip").write_bytes(bytes(range(256)) * 10)
    (root / "sub" / "big.bin").write_bytes(b"x" * 5000)
    return root


def test_same_files_same_name_and_a_changed_file_a_new_one(folder):
    first = pack_folder(folder)
    (folder / "agent.zip").touch()  # a new timestamp, the same bytes
    assert pack_folder(folder) == first
    only = pack_folder(folder, ["run.json", "agent.zip"])
    assert only.digest != first.digest
    (folder / "agent.zip").write_bytes(b"retrained")
    assert pack_folder(folder).digest != first.digest
    with pytest.raises(BlobError, match="missing replay_buffer.npz"):
        pack_folder(folder, ["run.json", "replay_buffer.npz"])


def test_unpacked_once_into_a_folder_named_by_the_hash(folder, tmp_path):
    blob = pack_folder(folder)
    cache = tmp_path / "cache"
    target = unpack_blob(blob, cache)
    assert target == cache / blob.digest == cached_folder(blob.digest, cache)
    assert (target / "sub" / "big.bin").read_bytes() == b"x" * 5000
    assert (target / "agent.zip").read_bytes() == (folder / "agent.zip").read_bytes()
    (target / "run.json").write_text("marker")  # a second unpack would overwrite it
    assert unpack_blob(blob, cache) == target and (target / "run.json").read_text() == "marker"
    assert sorted(p.name for p in cache.iterdir()) == [blob.digest]  # no temporary left


def test_bytes_that_do_not_match_their_name_are_refused(folder, tmp_path):
    blob = pack_folder(folder)
    forged = Blob(blob.digest, blob.data[:-1] + b"!")
    with pytest.raises(BlobError, match="do not hash to its name"):
        unpack_blob(forged, tmp_path / "cache")
    with pytest.raises(BlobError, match="not a SHA-256"):
        unpack_blob(Blob("../../etc", blob.data), tmp_path / "cache")
    assert not (tmp_path / "cache" / blob.digest).exists()


def _tar_blob(*members: tarfile.TarInfo) -> Blob:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info in members:
            archive.addfile(info, io.BytesIO(b"evil") if info.isfile() else None)
    data = buffer.getvalue()
    return Blob(hashlib.sha256(data).hexdigest(), data)


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 4
    return info


def _link(name: str, to: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, to
    return info


@pytest.mark.parametrize(
    "member",
    [_file("../escaped.txt"), _file("/tmp/escaped.txt"), _link("out", "../../..")],
    ids=["dotdot", "absolute", "symlink-out"],
)
def test_no_member_escapes_the_cache(member, tmp_path):
    cache = tmp_path / "deep" / "cache"
    blob = _tar_blob(_file("fine.txt"), member)
    with pytest.raises(BlobError, match=f"blob {blob.digest[:12]}: cannot unpack"):
        unpack_blob(blob, cache)
    assert not (tmp_path / "deep" / "escaped.txt").exists()
    assert list(cache.iterdir()) == []  # neither the blob's folder nor a temporary


def test_restore_replaces_a_folder_whole(folder, tmp_path):
    target = tmp_path / "out" / "seed_0"
    (target / "stale").mkdir(parents=True)
    restore_folder(pack_folder(folder), target)
    assert sorted(p.name for p in target.iterdir()) == ["agent.zip", "run.json", "sub"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["seed_0"]


def test_without_ray_the_flag_is_one_line_naming_the_extra(monkeypatch):
    import sys

    from common.ray_cluster import ClusterError, connect

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(ClusterError, match=r"pip install 'driveenv\[ray\]'"):
        connect("auto")


def test_an_address_where_no_head_listens_fails_at_once(monkeypatch):
    import time

    ray = pytest.importorskip("ray")
    from common.ray_cluster import ClusterError, connect

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    start = time.perf_counter()
    with pytest.raises(ClusterError, match="--ray 127.0.0.1:1: no Ray head answers there"):
        connect("127.0.0.1:1")
    assert time.perf_counter() - start < 30  # Ray's own retries take minutes


def test_a_content_goes_into_the_object_store_once(folder, tmp_path):
    import shutil

    from common.ray_cluster import FolderSharer

    class Store:  # stands in for the ray module: counts what is put
        def __init__(self):
            self.puts = []

        def put(self, data):
            self.puts.append(data)
            return len(self.puts)

    store = Store()
    sharer = FolderSharer(store)
    shutil.copytree(folder, tmp_path / "same")
    first = sharer.share(folder)
    assert sharer.share(folder) == first == sharer.share(tmp_path / "same")  # same bytes
    assert sharer.share(folder, ["run.json"]).digest != first.digest
    assert len(store.puts) == 2 and first.size == len(store.puts[0])
