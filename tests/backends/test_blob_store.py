"""The BlobStore contract, run against every backend."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dicom_file_service.storage import BlobNotFound, BlobStore, LocalBlobStore


@pytest.fixture(params=["local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def _staged(store: BlobStore, data: bytes) -> Path:
    path = store.staging_dir() / f"upload-{time.monotonic_ns()}"
    path.write_bytes(data)
    return path


def test_put_file_moves_the_staged_file_under_the_key(store: BlobStore) -> None:
    staged = _staged(store, b"DICM" * 1000)
    store.put_file("instances/ab/cd/abcdef", staged)
    assert not staged.exists()
    assert store.exists("instances/ab/cd/abcdef")
    with store.open("instances/ab/cd/abcdef") as f:
        assert f.read() == b"DICM" * 1000
    assert store.size("instances/ab/cd/abcdef") == 4000


def test_put_bytes_then_read_ranges(store: BlobStore) -> None:
    data = bytes(range(256)) * 10
    store.put_bytes("renderings/x/y/z/k.png", data)
    assert b"".join(store.iter_range("renderings/x/y/z/k.png")) == data
    assert b"".join(store.iter_range("renderings/x/y/z/k.png", 10, 20)) == data[10:20]
    chunks = list(store.iter_range("renderings/x/y/z/k.png", 0, None, chunk_size=100))
    assert [len(c) for c in chunks[:2]] == [100, 100]
    assert b"".join(chunks) == data


def test_missing_objects_are_reported(store: BlobStore) -> None:
    assert not store.exists("instances/no/ne/none")
    with pytest.raises(BlobNotFound):
        store.open("instances/no/ne/none")
    with pytest.raises(BlobNotFound):
        store.size("instances/no/ne/none")


def test_delete_and_delete_prefix_are_idempotent(store: BlobStore) -> None:
    store.put_bytes("renderings/a/b/id1/one.png", b"1")
    store.put_bytes("renderings/a/b/id1/two.png", b"2")
    store.put_bytes("renderings/a/b/id10/keep.png", b"3")
    store.delete_prefix("renderings/a/b/id1")
    assert not store.exists("renderings/a/b/id1/one.png")
    assert not store.exists("renderings/a/b/id1/two.png")
    assert store.exists("renderings/a/b/id10/keep.png")
    store.delete_prefix("renderings/a/b/id1")
    store.delete("renderings/a/b/id10/keep.png")
    store.delete("renderings/a/b/id10/keep.png")
    assert not store.exists("renderings/a/b/id10/keep.png")


def test_overwriting_a_key_is_atomic(store: BlobStore) -> None:
    store.put_bytes("k/v", b"old")
    store.put_bytes("k/v", b"new")
    with store.open("k/v") as f:
        assert f.read() == b"new"


@pytest.mark.parametrize("key", ["", "../escape", "a/../../b", "/abs", "a//b", ".staging/x"])
def test_keys_cannot_escape_the_store(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        store.put_bytes(key, b"x")


def test_sweep_removes_only_old_staging_files(store: BlobStore) -> None:
    old = _staged(store, b"abandoned")
    new = _staged(store, b"in progress")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert store.sweep_staging(older_than_seconds=3600) == 1
    assert not old.exists()
    assert new.exists()


def test_no_partial_object_is_visible_after_a_failed_put(store: BlobStore) -> None:
    """A put that fails half-way leaves the key absent, not torn."""


def test_prepared_prefixes_exist_and_puts_under_them_work(store: BlobStore) -> None:
    store.prepare_prefixes(["instances/Ab", "instances/Cd"])
    store.prepare_prefixes(["instances/Ab"])  # idempotent
    store.put_bytes("instances/Ab/AbCdEf", b"x")
    assert store.exists("instances/Ab/AbCdEf")


def test_list_keys_names_every_object_under_a_prefix(store: BlobStore) -> None:
    store.put_bytes("instances/Ab/AbX", b"1")
    store.put_bytes("instances/Cd/CdY", b"2")
    store.put_bytes("renderings/Ab/AbX/k.png", b"3")
    listed = dict(store.list_keys("instances"))
    assert set(listed) == {"instances/Ab/AbX", "instances/Cd/CdY"}
    assert all(t > 0 for t in listed.values())
