"""The embedded index's header cache: a hit never outlives a commit of any connection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from dicom_file_service.index import repository as repo
from dicom_file_service.index.database import IndexDatabase
from tests.backends.test_index import _keys, _values


@pytest.fixture
def two_processes(tmp_path: Path) -> Iterator[tuple[IndexDatabase, IndexDatabase]]:
    """Two index objects on one SQLite file, as two worker processes have (engines, pools
    and caches of their own)."""
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    reader = IndexDatabase(url, header_cache_bytes=1024 * 1024)
    reader.upgrade()
    writer = IndexDatabase(url)
    yield reader, writer
    reader.close()
    writer.close()


def _store(index: IndexDatabase, n: int) -> str:
    values = _values(n, header=f'{{"n":{n}}}'.encode())
    index.commit_grouped(lambda conn: repo.insert_instance(conn, values, _keys(values)))
    return str(values["file_id"])


def test_a_kept_header_is_dropped_by_a_delete_in_another_process(
    two_processes: tuple[IndexDatabase, IndexDatabase],
) -> None:
    reader, writer = two_processes
    file_id = _store(writer, 1)
    first = reader.headers.read(file_id)
    assert first is not None and first.json == b'{"n":1}'
    assert reader.headers.read(file_id) is first  # kept: the same object, not read again
    with writer.transaction() as conn:
        repo.delete_by_file_id(conn, file_id)
    assert reader.headers.read(file_id) is None  # seen at once


def test_a_kept_location_is_dropped_by_a_delete_in_another_process(
    two_processes: tuple[IndexDatabase, IndexDatabase],
) -> None:
    """Where a file's bytes are is kept too (a rendering asks it three times), and goes
    with any commit: a deleted file is neither located nor said to exist."""
    reader, writer = two_processes
    file_id = _store(writer, 1)
    first = reader.headers.blob_location(file_id)
    assert first is not None
    assert reader.headers.blob_location(file_id) is first  # kept, not read again
    assert asyncio.run(reader.headers.exists_async(file_id))
    with writer.transaction() as conn:
        repo.delete_by_file_id(conn, file_id)
    assert reader.headers.blob_location(file_id) is None  # seen at once
    assert not asyncio.run(reader.headers.exists_async(file_id))


def test_any_commit_drops_what_is_kept(
    two_processes: tuple[IndexDatabase, IndexDatabase],
) -> None:
    reader, writer = two_processes
    file_id = _store(writer, 1)
    kept = reader.headers.read(file_id)
    assert reader.headers.read(file_id) is kept
    with writer.transaction() as conn:  # an unrelated write, here a header rewritten in place
        conn.execute(text("UPDATE instances SET header = :h"), {"h": b'{"n":2}'})
    again = reader.headers.read(file_id)
    assert again is not None and again is not kept and again.json == b'{"n":2}'


def test_a_read_that_raced_a_commit_is_not_kept(
    two_processes: tuple[IndexDatabase, IndexDatabase],
) -> None:
    reader, writer = two_processes
    file_id = _store(writer, 1)
    cache = reader.headers._cache
    assert cache is not None
    seen, kept = cache.get(file_id)
    assert kept is None
    stale = reader.headers.read(file_id)
    assert stale is not None
    with writer.transaction() as conn:
        repo.delete_by_file_id(conn, file_id)
    cache.get("another")  # some request sees the change ...
    cache.put(file_id, stale, seen)  # ... before the racing read puts its row
    assert reader.headers.read(file_id) is None


def test_the_cache_holds_at_most_its_bytes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    index = IndexDatabase(url, header_cache_bytes=1000)
    index.upgrade()
    try:
        ids = [_store(index, n) for n in range(20)]
        for file_id in ids:
            assert index.headers.read(file_id) is not None
        cache = index.headers._cache
        assert cache is not None and cache._bytes <= 1000
    finally:
        index.close()


def test_a_hit_asks_the_database_nothing_until_something_is_committed(
    two_processes: tuple[IndexDatabase, IndexDatabase], monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, writer = two_processes
    file_id = _store(writer, 1)
    cache = reader.headers._cache
    assert cache is not None
    asked = []
    real = cache._data_version
    monkeypatch.setattr(cache, "_data_version", lambda: asked.append(1) or real())
    kept = reader.headers.read(file_id)
    reader.headers.read(file_id)  # the WAL-index header is now known
    asked.clear()
    for _ in range(5):
        assert reader.headers.read(file_id) is kept
    assert asked == []  # one pread of the -shm file each, no transaction
    with writer.transaction() as conn:
        conn.execute(text("UPDATE instances SET header = :h"), {"h": b'{"n":2}'})
    again = reader.headers.read(file_id)
    assert again is not None and again.json == b'{"n":2}'
    assert asked == [1]


def test_every_commit_is_seen_through_checkpoints(
    two_processes: tuple[IndexDatabase, IndexDatabase],
) -> None:
    """Commits one after another, the WAL checkpointed and restarted between some: each is
    seen by the next read (the WAL-index header changes with every one)."""
    reader, writer = two_processes
    file_id = _store(writer, 1)
    for n in range(2, 40):
        with writer.transaction() as conn:
            conn.execute(text("UPDATE instances SET header = :h"), {"h": b'{"n":%d}' % n})
        if n % 7 == 0:
            with writer.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        seen = reader.headers.read(file_id)
        assert seen is not None and seen.json == b'{"n":%d}' % n
        assert reader.headers.read(file_id) is seen  # and kept until the next
