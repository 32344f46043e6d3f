"""The index repository, run against every database (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, inspect, select

from dicom_file_service.dicom.query_keys import QueryKeys
from dicom_file_service.index import repository as repo
from dicom_file_service.index.database import IndexDatabase
from dicom_file_service.index.engine import WRITE_OPTIONS, create_index_engine, upgrade
from dicom_file_service.index.hot_reads import HeaderReader
from dicom_file_service.index.tables import instances
from tests.conftest import postgres_schema, require_postgres


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_index_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def _values(n: int, **over: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "file_id": f"file{n:018d}",
        "sop_instance_uid": f"1.2.3.{n}",
        "series_instance_uid": "1.2.3.100",
        "study_instance_uid": "1.2.3.1000",
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
        "transfer_syntax_uid": "1.2.840.10008.1.2.1",
        "patient_id": "P1" if n % 2 else "P2",
        "patient_name": "Doe^John",
        "modality": "CT" if n % 2 else "MR",
        "study_date": "20240101",
        "number_of_frames": 1,
        "size": 1000 + n,
        "sha256": f"{n:064x}",
        "blob_key": f"instances/fi/le/file{n:018d}",
        "created_at": time.time(),
        "header": b'{"00080018":{"vr":"UI","Value":["1.2.3"]}}',
        "header_index": b"",
        "bulk_lengths": b"{}",
    }
    values.update(over)
    return values


def _upgrade_to(engine: Engine, revision: str) -> None:
    """The schema as it was at ``revision`` (to store rows the way older versions did)."""
    from alembic import command

    from dicom_file_service.index.engine import alembic_config

    with engine.connect() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()


def _keys(values: dict[str, Any]) -> QueryKeys:
    study, series = values["study_instance_uid"], values["series_instance_uid"]
    return QueryKeys(
        {"study_instance_uid": study},
        {"series_instance_uid": series, "study_instance_uid": study},
        {"instance_number": None},
    )


def _insert(engine: Engine, values: dict[str, Any]) -> None:
    with engine.connect().execution_options(**WRITE_OPTIONS) as conn, conn.begin():
        repo.insert_instance(conn, values, _keys(values))


def test_migrations_create_the_schema_and_are_idempotent(engine: Engine) -> None:
    upgrade(engine)  # a second run changes nothing
    assert "instances" in inspect(engine).get_table_names()


def test_insert_then_read_back(engine: Engine) -> None:
    _insert(engine, _values(1))
    with engine.connect() as conn:
        rec = repo.get_by_file_id(conn, "file000000000000000001")
        assert rec is not None
        assert rec.sop_instance_uid == "1.2.3.1"
        assert repo.get_by_sop_instance_uid(conn, "1.2.3.1") == rec
        assert repo.get_by_file_id(conn, "nope") is None


def test_the_database_rejects_a_second_row_for_one_sop_instance(engine: Engine) -> None:
    _insert(engine, _values(1))
    with pytest.raises(repo.DuplicateKey):
        _insert(engine, _values(2, sop_instance_uid="1.2.3.1"))
    with engine.connect() as conn:
        assert repo.get_by_file_id(conn, "file000000000000000002") is None


def test_nothing_is_written_when_the_caller_rolls_back(engine: Engine) -> None:
    with engine.connect().execution_options(**WRITE_OPTIONS) as conn, conn.begin() as tx:
        repo.insert_instance(conn, _values(1), _keys(_values(1)))
        tx.rollback()
    with engine.connect() as conn:
        assert repo.get_by_file_id(conn, "file000000000000000001") is None


def test_listing_is_newest_first_keyset_paginated_and_filterable(engine: Engine) -> None:
    for n in range(1, 8):
        _insert(engine, _values(n))
    with engine.connect() as conn:
        page1 = repo.list_instances(conn, limit=3)
        assert [r.sop_instance_uid for r in page1] == ["1.2.3.7", "1.2.3.6", "1.2.3.5"]
        page2 = repo.list_instances(conn, limit=3, before_seq=page1[-1].seq)
        assert [r.sop_instance_uid for r in page2] == ["1.2.3.4", "1.2.3.3", "1.2.3.2"]
        ct = repo.list_instances(conn, limit=10, filters={"modality": "CT"})
        assert [r.sop_instance_uid for r in ct] == ["1.2.3.7", "1.2.3.5", "1.2.3.3", "1.2.3.1"]
        with pytest.raises(ValueError, match="unknown filter"):
            repo.list_instances(conn, limit=1, filters={"header": "x"})


def test_delete_removes_the_row(engine: Engine) -> None:
    _insert(engine, _values(1))
    with engine.connect() as conn, conn.begin():
        assert repo.delete_by_file_id(conn, "file000000000000000001")
        assert not repo.delete_by_file_id(conn, "file000000000000000001")
    with engine.connect() as conn:
        assert repo.get_by_file_id(conn, "file000000000000000001") is None


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Any) -> None:
    eng = create_index_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    eng.dispose()


def test_hot_header_reader_sees_inserts_and_deletes_at_once(engine: Engine) -> None:
    reader = HeaderReader(engine)
    try:
        assert reader.read("file000000000000000001") is None
        _insert(engine, _values(1))
        assert reader.read("file000000000000000001") == (
            b'{"00080018":{"vr":"UI","Value":["1.2.3"]}}',
            b"",
            b"{}",
        )
        with engine.connect() as conn, conn.begin():
            repo.delete_by_file_id(conn, "file000000000000000001")
        assert reader.read("file000000000000000001") is None
    finally:
        reader.close()


def test_hot_reads_from_short_lived_threads_leak_no_connections(database_url: str) -> None:
    """Threads come and go (anyio retires idle ones); connections must not stay with them."""
    from dicom_file_service.index.database import IndexDatabase

    index = IndexDatabase(database_url, pool_size=2, pool_timeout=2)
    try:
        index.upgrade()
        _insert(index.engine, _values(1))
        for _ in range(50):  # far more threads than the pool has connections
            t = threading.Thread(target=index.headers.read, args=("file000000000000000001",))
            t.start()
            t.join()
        pool = index.engine.pool
        assert pool.checkedout() <= 4  # type: ignore[attr-defined]  # the free list's few
        assert index.headers.read("file000000000000000001") is not None
    finally:
        index.close()


def test_an_exhausted_pool_is_index_unavailable(database_url: str) -> None:
    from dicom_file_service.errors import IndexUnavailable
    from dicom_file_service.index.database import IndexDatabase

    index = IndexDatabase(database_url, pool_size=1, pool_timeout=0.2)
    try:
        index.upgrade()
        with contextlib.ExitStack() as held:
            for _ in range(3):  # pool size + overflow, whichever the dialect allows
                try:
                    held.enter_context(index.read())
                except IndexUnavailable:
                    break
            with pytest.raises(IndexUnavailable, match="no free connection"):
                held.enter_context(index.read())
            with pytest.raises(IndexUnavailable, match="no free connection"):
                index.headers.read("file000000000000000001")
    finally:
        index.close()


def test_transactions_stay_atomic_after_hot_reads_returned_connections(
    database_url: str,
) -> None:
    """Hot reads run in autocommit; a connection they hand back to the pool must not carry
    that into the next transaction (its statements would commit one by one)."""
    from dicom_file_service.index.database import IndexDatabase

    index = IndexDatabase(database_url, pool_size=4, pool_timeout=5)
    try:
        index.upgrade()
        barrier = threading.Barrier(8)

        def read() -> None:
            barrier.wait()
            for _ in range(20):
                index.headers.read("file000000000000000009")

        threads = [threading.Thread(target=read) for _ in range(8)]  # more than it keeps
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for _ in range(4):  # whichever pooled connection a transaction gets
            with pytest.raises(RuntimeError):
                _insert_then_fail(index)
            with index.read() as conn:
                assert repo.get_by_file_id(conn, "file000000000000000001") is None
    finally:
        index.close()


def _insert_then_fail(index: Any) -> None:
    with index.transaction() as conn:
        repo.insert_instance(conn, _values(1), _keys(_values(1)))
        raise RuntimeError("roll back")


def test_concurrent_async_reads_each_get_their_own_row(database_url: str) -> None:
    """On PostgreSQL concurrent reads share one query; each still gets exactly its answer."""
    import asyncio

    from dicom_file_service.index.database import IndexDatabase

    index = IndexDatabase(database_url, pool_size=4, pool_timeout=5)
    try:
        index.upgrade()
        for n in range(1, 6):
            _insert(index.engine, _values(n, header=f'{{"n":{n}}}'.encode()))

        async def many() -> list[object]:
            ids = [f"file{n:018d}" for n in (1, 2, 2, 3, 9, 4, 5, 1)]  # 9 is absent
            headers = await asyncio.gather(*(index.headers.read_async(i) for i in ids))
            exists = await asyncio.gather(*(index.headers.exists_async(i) for i in ids))
            located = await asyncio.gather(*(index.headers.location_async(i) for i in ids))
            assert located == [index.headers.blob_location(i) for i in ids]
            assert [loc.blob_key if loc else None for loc in located] == [
                None if i.endswith("9") else _values(int(i[4:]))["blob_key"] for i in ids
            ]
            await index.headers.aclose()
            return [h.json if h else None for h in headers] + list(exists)

        async def staggered() -> list[bool]:
            """Reads in many loop turns: more batches in flight than connections."""

            async def one(n: int) -> bool:
                for _ in range(n % 7):
                    await asyncio.sleep(0)
                return await index.headers.exists_async(f"file{1 + n % 5:018d}")

            found = await asyncio.gather(*(one(n) for n in range(60)))
            await index.headers.aclose()
            return list(found)

        got = asyncio.run(many())
        for _ in range(2):  # contended, on one event loop and then on another
            assert asyncio.run(staggered()) == [True] * 60
        expected = [1, 2, 2, 3, None, 4, 5, 1]
        assert got[:8] == [None if n is None else f'{{"n":{n}}}'.encode() for n in expected]
        assert got[8:] == [True, True, True, True, False, True, True, True]
    finally:
        index.close()


def test_study_and_series_rows_come_with_the_first_instance_and_go_with_the_last(
    engine: Engine,
) -> None:
    from dicom_file_service.index.tables import series, studies

    def counts() -> tuple[int, int]:
        with engine.connect() as conn:
            n_studies = len(conn.execute(select(studies.c.seq)).all())
            return n_studies, len(conn.execute(select(series.c.seq)).all())

    _insert(engine, _values(1))
    _insert(engine, _values(2))
    _insert(engine, _values(3, series_instance_uid="1.2.3.101"))
    assert counts() == (1, 2)
    for n, expected in ((1, (1, 2)), (3, (1, 1)), (2, (0, 0))):
        with engine.connect().execution_options(**WRITE_OPTIONS) as conn, conn.begin():
            assert repo.delete_by_file_id(conn, f"file{n:018d}")
        assert counts() == expected


def test_the_migration_fills_query_rows_from_headers_stored_before_it(
    database_url: str,
) -> None:
    """Instances stored before the study and series tables existed are found by QIDO."""
    from sqlalchemy import column, insert, table

    from dicom_file_service.dicom.header_index import encode_header
    from dicom_file_service.dicom.parse import parse_file
    from dicom_file_service.index.tables import instances, series, studies
    from tests.datafiles import data_file

    eng = create_index_engine(database_url)
    try:
        _upgrade_to(eng, "0003")
        parsed = parse_file(data_file("CT_small.dcm"), bulk_data_uri_prefix="/x")
        header, index = encode_header(parsed.header)
        old_columns = [column(c.name) for c in instances.columns if c.name != "instance_number"]
        values = _values(
            1,
            study_instance_uid=parsed.study_instance_uid,
            series_instance_uid=parsed.series_instance_uid,
            header=header,
            header_index=index,
        )
        with eng.begin() as conn:
            conn.execute(insert(table("instances", *old_columns)).values(**values))
        upgrade(eng)
        with eng.connect() as conn:
            study = conn.execute(select(studies)).one()._mapping
            assert study["study_instance_uid"] == parsed.study_instance_uid
            assert study["patient_name"] == "CompressedSamples^CT1".upper()
            assert study["study_date"] == "20040119"
            one = conn.execute(select(series)).one()._mapping
            assert one["modality"] == "CT"
            number = conn.execute(select(instances.c.instance_number)).scalar()
            assert number == 1
    finally:
        eng.dispose()


def test_uploads_and_deletes_racing_in_one_study_keep_its_rows_consistent(
    database_url: str,
) -> None:
    """An upload into a study while its last instance is deleted: the study and series rows
    end up existing exactly when instances of them do (the study row is locked first)."""
    from dicom_file_service.index.database import IndexDatabase
    from dicom_file_service.index.tables import instances, series, studies

    index = IndexDatabase(database_url, pool_size=4, pool_timeout=10)
    try:
        index.upgrade()

        orphans: list[int] = []

        def churn(first: int) -> None:
            for n in range(first, first + 200, 2):
                values = _values(n)
                with index.transaction() as conn:
                    repo.insert_instance(conn, values, _keys(values))
                with index.read() as conn:  # our instance is there: so must its rows be
                    if not conn.execute(select(series.c.seq)).all():
                        orphans.append(n)
                with index.transaction() as conn:
                    repo.delete_by_file_id(conn, values["file_id"])

        threads = [threading.Thread(target=churn, args=(first,)) for first in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert orphans == []
        _insert(index.engine, _values(99))
        with index.read() as conn:
            assert conn.execute(select(instances.c.file_id)).scalars().all() == [
                "file000000000000000099"
            ]
            assert len(conn.execute(select(studies.c.seq)).all()) == 1
            assert len(conn.execute(select(series.c.seq)).all()) == 1
    finally:
        index.close()


def test_the_migration_takes_routes_out_of_stored_headers(database_url: str) -> None:
    """Headers stored with the file API's route in their BulkDataURIs keep only the location,
    and their span index still finds every element."""
    from sqlalchemy import column, insert, table

    from dicom_file_service.dicom.header_index import encode_header, select_elements
    from dicom_file_service.dicom.parse import parse_file
    from dicom_file_service.index.tables import instances
    from tests.datafiles import data_file

    eng = create_index_engine(database_url)
    try:
        _upgrade_to(eng, "0004")
        file_id = "file000000000000000001"
        parsed = parse_file(
            data_file("CT_small.dcm"), bulk_data_uri_prefix=f"/dicom-image/{file_id}/bulkdata"
        )
        header, index = encode_header(parsed.header)
        with eng.begin() as conn:
            columns = [column(c.name) for c in instances.columns]
            conn.execute(
                insert(table("instances", *columns)).values(
                    **_values(1, header=header, header_index=index), instance_number=1
                )
            )
        upgrade(eng)
        with eng.connect() as conn:
            row = conn.execute(select(instances.c.header, instances.c.header_index)).one()
        new_header, new_index = bytes(row[0]), bytes(row[1])
        assert b"/dicom-image/" not in new_header
        found = select_elements(new_header, new_index, ["7FE00010", "00100010"])
        assert found["7FE00010"]["BulkDataURI"] == "7FE00010"
        assert found["00100010"]["Value"] == [{"Alphabetic": "CompressedSamples^CT1"}]
    finally:
        eng.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema (coalesced reads are PostgreSQL's alone)."""
    require_postgres()
    with postgres_schema() as url:
        yield url


def _point_reads(database_url: str, max_size: int) -> Any:
    """The event loop's point reads on the database at ``database_url``."""
    from sqlalchemy import make_url

    from dicom_file_service.index.async_reads import AsyncPointReads

    conninfo = make_url(database_url).set(drivername="postgresql")
    return AsyncPointReads(
        conninfo.render_as_string(hide_password=False), max_size=max_size, timeout=5
    )


def _coalesced(database_url: str, straggler_seconds: float) -> Any:
    """Coalesced reads of a query that answers each id with the size of its batch, after
    sleeping as long as an id ``sleep<seconds>`` asks."""
    from dicom_file_service.index.async_reads import CoalescedReads

    reads = _point_reads(database_url, max_size=4)
    sql = (
        "SELECT x, cardinality(%(ids)s::text[]), pg_sleep(COALESCE(MAX(CASE WHEN x LIKE "
        "'sleep%%' THEN substr(x, 6)::float END) OVER (), 0)) FROM unnest(%(ids)s::text[]) AS x"
    )
    return reads, CoalescedReads(reads, sql, straggler_seconds=straggler_seconds)


def test_reads_arriving_while_a_batch_is_out_go_together_after_it(postgres_url: str) -> None:
    import asyncio

    reads, coalesced = _coalesced(postgres_url, straggler_seconds=10)

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(coalesced.get("sleep0.3"))
        await asyncio.sleep(0.1)  # the first batch is out
        later = []
        for name in ("b", "c", "d"):  # in three turns of the loop
            later.append(asyncio.ensure_future(coalesced.get(name)))
            await asyncio.sleep(0)
        answers = await asyncio.gather(first, *later)
        await reads.close()
        return [row[0] for row in answers]

    assert asyncio.run(scenario()) == [1, 3, 3, 3]  # one query for the three, after the first


def test_a_slow_batch_does_not_hold_the_next_back_for_longer_than_the_bound(
    postgres_url: str,
) -> None:
    import asyncio
    import time

    reads, coalesced = _coalesced(postgres_url, straggler_seconds=0.05)

    async def scenario() -> tuple[float, bool]:
        slow = asyncio.ensure_future(coalesced.get("sleep3"))
        await asyncio.sleep(0.1)  # out, and already a straggler
        started = time.monotonic()
        answer = await coalesced.get("fast")
        waited = time.monotonic() - started
        still_out = not slow.done()
        await slow
        await reads.close()
        assert answer[0] == 1
        return waited, still_out

    waited, still_out = asyncio.run(scenario())
    assert still_out and waited < 1.5


def test_ids_of_any_characters_reach_the_database_as_they_are(postgres_url: str) -> None:
    """Ids go to PostgreSQL as a quoted array literal: quotes, backslashes, commas, braces,
    spaces and NULL-looking words come back unchanged, each once."""
    import asyncio

    reads = _point_reads(postgres_url, max_size=2)
    ids = ['a"b', "c\\d", "e,f", "{g}", " h ", "NULL", "", "100%"]
    sql = "SELECT x, length(x), x LIKE '%%\\%%' FROM unnest(%(ids)s::text[]) AS x"

    async def scenario() -> list[tuple[object, ...]]:
        try:
            first = await reads.fetch_by_ids(sql, ids)
            again = await reads.fetch_by_ids(sql, ids[:2])  # the prepared statement, reused
        finally:
            await reads.close()
        return first + again

    rows = asyncio.run(scenario())
    assert [r[0] for r in rows] == ids + ids[:2]
    assert [r[1] for r in rows] == [len(i) for i in ids + ids[:2]]
    assert [r[2] for r in rows] == [i.endswith("%") for i in ids + ids[:2]]


def test_a_read_without_a_transaction_opens_none(database_url: str) -> None:
    """On PostgreSQL a read that needs no transaction sends no BEGIN (and so no ROLLBACK):
    two round trips fewer. Its statements see the same rows as in a read with one."""
    db = IndexDatabase(database_url)
    try:
        db.upgrade()
        with db.transaction() as conn:
            repo.insert_instance(conn, _values(1), _keys(_values(1)))
        for transaction in (True, False):
            with db.read(transaction=transaction) as conn:
                assert conn.execute(select(func.count()).select_from(instances)).scalar() == 1
                if db.engine.dialect.name == "postgresql":
                    driver = conn.connection.driver_connection
                    status = driver.info.transaction_status  # type: ignore[union-attr]
                    assert (status.name == "INTRANS") is transaction
    finally:
        db.engine.dispose()


def test_a_search_read_cut_off_by_the_database_is_index_unavailable(postgres_url: str) -> None:
    """A page's headers are read past SQLAlchemy (binary format): a failure there is still
    the service's IndexUnavailable (a 503), and the broken connection is not reused."""
    from dicom_file_service.errors import IndexUnavailable
    from dicom_file_service.index.qido import headers_by_seq

    db = IndexDatabase(postgres_url)
    try:
        db.upgrade()
        with db.transaction() as conn:
            seq = repo.insert_instance(conn, _values(1), _keys(_values(1)))
        with db.read(transaction=False) as conn:
            assert headers_by_seq(conn, [seq, seq + 1]).keys() == {seq}
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with db.engine.connect() as other:
                other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
            with pytest.raises(IndexUnavailable):
                headers_by_seq(conn, [seq, seq + 1])
        with db.read(transaction=False) as conn:  # a fresh connection
            assert headers_by_seq(conn, [seq, seq + 1]).keys() == {seq}
    finally:
        db.engine.dispose()
