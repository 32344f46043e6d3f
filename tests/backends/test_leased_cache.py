"""PostgreSQL's header cache: nothing kept is served once a delete has been answered, by any
instance, whether it heard the delete, lost its connection, or vanished."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from dicom_file_service.index import repository as repo
from dicom_file_service.index.database import IndexDatabase
from dicom_file_service.index.hot_reads import StoredHeader
from dicom_file_service.index.leased_cache import WATCH_NAME, DeletionWatch, LeasedCache
from tests.backends.test_header_cache import _store
from tests.conftest import postgres_schema, require_postgres

LEASE = 2.0


@pytest.fixture
def instances() -> Iterator[tuple[IndexDatabase, IndexDatabase]]:
    """Two instances on one PostgreSQL schema: one that keeps headers (lease ``LEASE`` s),
    one that writes and keeps nothing."""
    require_postgres()
    with postgres_schema() as url:
        reader = IndexDatabase(url, header_cache_bytes=1024 * 1024, lease_seconds=LEASE)
        reader.upgrade()
        writer = IndexDatabase(url)
        try:
            yield reader, writer
        finally:
            reader.close()
            writer.close()


def _cache(index: IndexDatabase) -> LeasedCache[object]:
    cache = index.headers._cache
    assert isinstance(cache, LeasedCache)
    return cache


def _serving(index: IndexDatabase) -> None:
    """Wait until the instance serves kept values (its watch listens and holds a lease)."""
    cache = _cache(index)
    deadline = time.monotonic() + 10
    while cache.get("any")[0] is None:
        assert time.monotonic() < deadline, "the watch never started serving"
        time.sleep(0.02)


def _stored_while_serving(
    instances: tuple[IndexDatabase, IndexDatabase],
) -> tuple[IndexDatabase, IndexDatabase, str]:
    """(reader, writer, the id of a file the writer stored), once the reader serves."""
    reader, writer = instances
    file_id = _store(writer, 1)
    _serving(reader)
    return reader, writer, file_id


def _delete(index: IndexDatabase, file_id: str) -> float:
    """Seconds the deleting transaction took, to its return."""
    started = time.monotonic()
    with index.transaction() as conn:
        assert repo.delete_by_file_id(conn, file_id)
    return time.monotonic() - started


def test_a_kept_header_is_not_served_once_a_delete_elsewhere_returns(
    instances: tuple[IndexDatabase, IndexDatabase],
) -> None:
    reader, writer, file_id = _stored_while_serving(instances)
    first = reader.headers.read(file_id)
    assert first is not None and first.json == b'{"n":1}'
    assert reader.headers.read(file_id) is first  # kept: the same object, not read again

    async def reads() -> tuple[object, object, object, bool]:
        headers = reader.headers
        try:
            return (
                await headers.read_async(file_id),
                await headers.location_async(file_id),
                await headers.location_async(file_id),
                await headers.exists_async(file_id),
            )
        finally:
            await headers.aclose()

    header, located, again, exists = asyncio.run(reads())
    assert header is first and located is not None and again is located and exists
    assert _delete(writer, file_id) < LEASE / 2  # acknowledged, not waited out
    assert reader.headers.read(file_id) is None  # seen at once, by every way of reading
    assert asyncio.run(reads()) == (None, None, None, False)


def test_other_writes_keep_what_is_kept(
    instances: tuple[IndexDatabase, IndexDatabase],
) -> None:
    """Files are immutable under their id: an upload of another file drops nothing."""
    reader, writer, file_id = _stored_while_serving(instances)
    kept = reader.headers.read(file_id)
    _store(writer, 2)
    assert reader.headers.read(file_id) is kept


def test_any_change_to_instance_rows_drops_what_is_kept(
    instances: tuple[IndexDatabase, IndexDatabase],
) -> None:
    """A header rewritten in place (by hand: the service never does) is heard too."""
    reader, writer, file_id = _stored_while_serving(instances)
    kept = reader.headers.read(file_id)
    with writer.transaction() as conn:
        conn.execute(text("UPDATE instances SET header = :h"), {"h": b'{"n":2}'})
    deadline = time.monotonic() + 5  # no fence for hand-made updates: heard within moments
    while (again := reader.headers.read(file_id)) is kept:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert again is not None and again.json == b'{"n":2}'


def test_a_read_that_raced_a_delete_is_not_kept(
    instances: tuple[IndexDatabase, IndexDatabase],
) -> None:
    reader, writer, file_id = _stored_while_serving(instances)
    cache = _cache(reader)
    seen, kept = cache.get(file_id)
    assert seen is not None and kept is None
    row = reader.headers._fetch(reader.headers._sql, file_id)  # read before the delete
    stale = StoredHeader(bytes(row[0]), bytes(row[1]), bytes(row[2]))
    _delete(writer, file_id)
    cache.put(file_id, stale, seen)  # ... kept after it: refused
    assert cache.get(file_id)[1] is None
    assert reader.headers.read(file_id) is None


def test_a_delete_waits_out_the_lease_of_an_instance_that_does_not_answer(
    instances: tuple[IndexDatabase, IndexDatabase],
) -> None:
    """An instance that holds a lease and does not acknowledge (hung, or gone without
    leaving) is waited for until its lease ends, and not beyond; an ended lease is not."""
    _reader, writer = instances
    ids = [_store(writer, n) for n in (1, 2)]
    with writer.transaction() as conn:
        conn.execute(
            text(
                "INSERT INTO serving_instances VALUES "
                "('silent', now() + interval '1.5 seconds'), ('gone', now() - interval '1 hour')"
            )
        )
    took = _delete(writer, ids[0])
    assert 1.2 < took < 1.5 + 2.0
    assert _delete(writer, ids[1]) < 1.0  # its lease has ended: no wait


def test_an_instance_that_loses_its_connection_serves_nothing_kept(
    instances: tuple[IndexDatabase, IndexDatabase],
) -> None:
    """The watch's connection killed: what was kept is dropped, a delete made meanwhile is
    never served from memory, and keeping resumes once the watch listens again."""
    reader, writer = instances
    file_id, other = _store(writer, 1), _store(writer, 2)
    _serving(reader)
    assert reader.headers.read(file_id) is reader.headers.read(file_id)
    assert reader.headers.read(other) is not None
    watch = _cache(reader)._watch
    assert watch is not None
    with writer.read() as conn:
        assert conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid = :pid AND application_name = :name"
            ),
            {"pid": watch.backend_pid, "name": WATCH_NAME},
        ).scalar()
    took = _delete(writer, file_id)  # while the watch reconnects: acknowledged or waited out
    assert took < LEASE + 1
    assert reader.headers.read(file_id) is None
    _serving(reader)
    kept = reader.headers.read(other)
    assert kept is not None and reader.headers.read(other) is kept


def test_a_delete_with_no_instance_keeping_anything_waits_for_nothing(
    instances: tuple[IndexDatabase, IndexDatabase],
) -> None:
    _reader, writer = instances  # the reader never read: its watch never started
    file_id = _store(writer, 1)
    assert _delete(writer, file_id) < 0.5


def test_a_closed_instance_leaves_its_lease(
    instances: tuple[IndexDatabase, IndexDatabase],
) -> None:
    reader, writer = instances
    _serving(reader)
    reader.headers.close()
    with writer.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM serving_instances")).scalar() == 0


def test_an_instance_that_cannot_hear_notices_never_serves_what_it_keeps(
    instances: tuple[IndexDatabase, IndexDatabase], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its LISTEN without effect (as behind a proxy that pools transactions): it renews its
    lease but never hears its own probe, so it reads every time and keeps nothing."""
    reader, writer = instances
    monkeypatch.setattr(DeletionWatch, "_listen", lambda self, conn, gone: None)
    file_id = _store(writer, 1)
    cache = _cache(reader)
    deadline = time.monotonic() + 2 * LEASE
    while time.monotonic() < deadline:
        assert cache.get("any") == (None, None)
        first = reader.headers.read(file_id)
        assert first is not None and reader.headers.read(file_id) is not first
        time.sleep(0.05)


def test_a_delete_before_the_leases_table_exists_waits_for_nothing(
    instances: tuple[IndexDatabase, IndexDatabase],
) -> None:
    """No table, no lease anyone could hold (a schema not yet migrated that far)."""
    _reader, writer = instances
    file_id = _store(writer, 1)
    with writer.transaction() as conn:
        conn.execute(text("DROP TABLE serving_instances"))
    assert _delete(writer, file_id) < 0.5
    with writer.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM instances")).scalar() == 0


def test_notices_are_heard_whatever_else_the_search_path_holds() -> None:
    """An instance whose search path starts with another schema (its own ``current_schema``)
    listens on the channel of the schema its ``instances`` table is in, as the trigger
    names it."""
    require_postgres()
    with postgres_schema() as url:
        schema = url.rsplit("%3D", 1)[1]
        extra = f"{schema}_first"
        writer = IndexDatabase(url)
        writer.upgrade()
        with writer.transaction() as conn:
            conn.execute(text(f'CREATE SCHEMA "{extra}"'))
        reader = IndexDatabase(
            url.replace(f"%3D{schema}", f"%3D{extra}%2C{schema}"),
            header_cache_bytes=1024 * 1024,
            lease_seconds=LEASE,
        )
        try:
            with reader.read() as conn:
                assert conn.execute(text("SELECT current_schema()")).scalar() == extra
            file_id = _store(writer, 1)
            _serving(reader)
            kept = reader.headers.read(file_id)
            assert kept is not None and reader.headers.read(file_id) is kept
            assert _delete(writer, file_id) < LEASE / 2
            assert reader.headers.read(file_id) is None
        finally:
            reader.close()
            with writer.transaction() as conn:
                conn.execute(text(f'DROP SCHEMA "{extra}"'))
            writer.close()
