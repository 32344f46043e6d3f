"""Copies of recently stored files beside a remote store (SeaweedFS): read instead of the
store, made only after a put succeeded, gone with a delete, bounded by age and size."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

from dicom_file_service.errors import StorageUnavailable
from dicom_file_service.storage import BlobNotFound, LocalCopies
from dicom_file_service.storage.base import BlobStore
from tests.backends.test_blob_store import _file, s3_store
from tests.s3server import S3Server

KEY = "instances/ab/abcdef"


@pytest.fixture
def remote(s3_server: S3Server) -> BlobStore:
    return s3_store(s3_server)


@pytest.fixture
def copies(remote: BlobStore, tmp_path: Path) -> Iterator[LocalCopies]:
    with _copies(remote, tmp_path, 64 << 20) as store:
        yield store


@contextmanager
def _copies(
    remote: BlobStore, tmp_path: Path, capacity: int, **kwargs: bool
) -> Iterator[LocalCopies]:
    """Copies of at most ``capacity`` bytes (``sweeper=False``: swept only when asked)."""
    store = LocalCopies(
        remote, tmp_path / "copies", capacity_bytes=capacity, max_age_seconds=600, **kwargs
    )
    try:
        yield store
    finally:
        store.close()


def _copy_names(copies: LocalCopies) -> list[str]:
    return sorted(p.name for p in copies.directory.iterdir())


def test_a_stored_file_is_read_from_its_copy_with_the_object_gone(
    copies: LocalCopies, remote: BlobStore, tmp_path: Path
) -> None:
    """Every read is served by the copy: with the object removed behind its back, each
    still answers, byte for byte."""
    data = bytes(range(256)) * 1000
    staged = _file(tmp_path, data)
    copies.put_file(KEY, staged)
    assert staged.read_bytes() == data  # the caller's file is left in place
    remote.delete(KEY)
    assert copies.get_bytes(KEY) == data
    assert asyncio.run(copies.get_bytes_async(KEY)) == data
    assert copies.read_range(KEY, 1000, 71_000) == data[1000:71_000]
    assert asyncio.run(copies.read_range_async(KEY, 5, 10)) == data[5:10]
    assert b"".join(copies.iter_range(KEY, 10, None, chunk_size=4096)) == data[10:]
    with copies.open_reader(KEY, len(data)) as f:
        f.seek(70_000)
        assert f.read(5000) == data[70_000:75_000]
    assert copies.size(KEY) == len(data) and copies.exists(KEY)


def test_bytes_put_are_copied_too_and_the_copy_is_the_object(
    copies: LocalCopies, remote: BlobStore
) -> None:
    """The copy is written under a temporary name and renamed into place after the put:
    nothing else is left in the directory."""
    copies.put_bytes(KEY, b"DICM" * 300)
    assert _copy_names(copies) == [quote(KEY, safe="")]
    assert remote.get_bytes(KEY) == b"DICM" * 300  # the store has it: the truth
    remote.delete(KEY)
    assert copies.get_bytes(KEY) == b"DICM" * 300


def test_copies_of_puts_under_way_together_each_get_their_own_bytes(
    copies: LocalCopies, remote: BlobStore
) -> None:
    """Puts at once from several threads: each copy holds its own object's bytes."""
    keys = [f"instances/ab/key{n:03d}" for n in range(40)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: copies.put_bytes(k, k.encode() * 500), keys))
    assert _copy_names(copies) == sorted(quote(k, safe="") for k in keys)
    for key in keys:
        remote.delete(key)
        assert copies.get_bytes(key) == key.encode() * 500


def test_keys_outside_the_prefix_are_not_copied(copies: LocalCopies, remote: BlobStore) -> None:
    copies.put_bytes("renderings/ab/abcdef/x.png", b"PNG")
    remote.delete("renderings/ab/abcdef/x.png")
    with pytest.raises(BlobNotFound):
        copies.get_bytes("renderings/ab/abcdef/x.png")
    assert _copy_names(copies) == []


def test_a_put_that_fails_leaves_no_copy(s3_server: S3Server, tmp_path: Path) -> None:
    refused = s3_store(s3_server, AWS_SECRET_ACCESS_KEY="not-the-secret")
    with _copies(refused, tmp_path, 1 << 20) as store:
        with pytest.raises(StorageUnavailable):
            store.put_file(KEY, _file(tmp_path, b"DICM"))
        with pytest.raises(StorageUnavailable):
            store.put_bytes(KEY, b"DICM")
        assert _copy_names(store) == []


def test_a_delete_removes_the_copy_and_the_object(
    copies: LocalCopies, remote: BlobStore, tmp_path: Path
) -> None:
    copies.put_file(KEY, _file(tmp_path, b"one"))
    copies.put_file("instances/cd/cdef", _file(tmp_path / "second", b"two"))
    copies.delete(KEY)
    assert not copies.exists(KEY) and not remote.exists(KEY)
    with pytest.raises(BlobNotFound):
        copies.get_bytes(KEY)
    copies.delete_prefix("instances/cd")
    assert _copy_names(copies) == [] and not remote.exists("instances/cd/cdef")


def test_a_copy_gone_from_the_disk_is_read_from_the_store(
    copies: LocalCopies, tmp_path: Path
) -> None:
    """Another process of the instance may have swept it: the store still has the file."""
    copies.put_file(KEY, _file(tmp_path, b"DICM" * 10))
    for name in _copy_names(copies):
        os.unlink(copies.directory / name)
    assert copies.get_bytes(KEY) == b"DICM" * 10
    with copies.open_reader(KEY) as f:
        assert f.read() == b"DICM" * 10


def test_a_reader_keeps_its_copy_when_the_sweep_removes_it(
    remote: BlobStore, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    with _copies(remote, tmp_path, 64 << 20, sweeper=False) as copies:
        copies.put_file(KEY, _file(tmp_path, data))
        remote.delete(KEY)
        with copies.open_reader(KEY) as f:
            assert f.read(10) == data[:10]
            for name in _copy_names(copies):
                os.utime(copies.directory / name, (0, 0))  # long expired
            assert copies.sweep() == 1 and _copy_names(copies) == []
            assert f.read() == data[10:]


def test_the_sweep_removes_expired_copies_then_the_oldest_beyond_the_capacity(
    remote: BlobStore, tmp_path: Path
) -> None:
    with _copies(remote, tmp_path, 45_000, sweeper=False) as store:
        now = time.time()
        for i, age in enumerate([700, 400, 300, 200, 100]):  # seconds ago; the first expired
            store.put_bytes(f"instances/aa/f{i}", bytes(10_000))
            os.utime(store.directory / f"instances%2Faa%2Ff{i}", (now - age, now - age))
        store.put_bytes("instances/aa/f5", bytes(10_000))  # now: 60,000 bytes in all
        leftover = store.directory / ".part-1-1"  # a copy a crash cut off, hours ago
        leftover.write_bytes(b"x")
        os.utime(leftover, (now - 7200, now - 7200))
        assert store.sweep() == 3  # expired, the oldest of the rest, the leftover
        assert [n.split("%2F")[-1] for n in _copy_names(store)] == ["f2", "f3", "f4", "f5"]


def test_a_file_larger_than_a_quarter_of_the_capacity_is_not_copied(
    remote: BlobStore, tmp_path: Path
) -> None:
    with _copies(remote, tmp_path, 4000) as store:
        store.put_bytes("instances/aa/small", bytes(1000))
        store.put_file("instances/aa/large", _file(tmp_path, bytes(1001)))
        assert _copy_names(store) == ["instances%2Faa%2Fsmall"]


def test_the_sweeper_keeps_the_directory_bounded_as_copies_arrive(
    remote: BlobStore, tmp_path: Path
) -> None:
    """Woken once an eighth of the capacity has been added since its last sweep."""
    with _copies(remote, tmp_path, 16_000) as store:
        for i in range(12):
            store.put_bytes(f"instances/aa/f{i:02}", bytes(4000))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            total = sum(e.stat().st_size for e in os.scandir(store.directory) if e.is_file())
            if total <= 16_000 + 2000:
                break
            time.sleep(0.05)
        assert total <= 16_000 + 2000
        assert store.get_bytes("instances/aa/f00") == bytes(4000)  # swept: from the store


def test_copies_never_take_the_disk_below_a_tenth_free(
    remote: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within their capacity, the oldest copies go when the disk they share with the staged
    uploads has less than a tenth free."""
    with _copies(remote, tmp_path, 64 << 20, sweeper=False) as store:
        now = time.time()
        for i in range(4):
            store.put_bytes(f"instances/aa/f{i}", bytes(10_000))
            os.utime(store.directory / f"instances%2Faa%2Ff{i}", (now - 40 + i, now - 40 + i))
        real = os.statvfs(store.directory)

        class Disk:  # 1,000,000 bytes, of which 85,000 free: 15,000 short of a tenth
            f_frsize, f_blocks, f_bavail = 1, 1_000_000, 85_000

        monkeypatch.setattr(os, "statvfs", lambda _path: Disk)
        assert store.sweep() == 2  # 20,000 bytes, the two oldest
        assert [n.split("%2F")[-1] for n in _copy_names(store)] == ["f2", "f3"]
        monkeypatch.setattr(os, "statvfs", lambda _path: real)
        assert store.sweep() == 0
