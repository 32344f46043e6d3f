"""An instance's rows sent to PostgreSQL in one round trip: what they do and how they fail."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from dicom_file_service.errors import IndexUnavailable, InvalidParameter
from dicom_file_service.index import repository as repo
from dicom_file_service.index.database import IndexDatabase
from dicom_file_service.index.engine import create_index_engine, upgrade
from tests.backends.test_group_commit import NextBatch
from tests.backends.test_index import _insert, _keys, _values
from tests.conftest import postgres_schema, require_postgres


@pytest.fixture
def engine() -> Iterator[Engine]:
    require_postgres()
    with postgres_schema() as url:
        eng = create_index_engine(url)
        upgrade(eng)
        yield eng
        eng.dispose()


def _study_row(engine: Engine) -> tuple[str, str]:
    """The study row's version (xmin) and its lock holder or deleter (xmax)."""
    with engine.connect() as conn:
        row = conn.execute(text("SELECT xmin::text, xmax::text FROM studies")).one()
    return row[0], row[1]


def test_an_instance_of_a_stored_study_locks_its_row_and_writes_no_new_version(
    engine: Engine,
) -> None:
    _insert(engine, _values(1))
    version, _ = _study_row(engine)
    with engine.connect() as conn, conn.begin():
        repo.insert_instance(conn, _values(2), _keys(_values(2)))
        mine = conn.execute(text("SELECT txid_current()::text")).scalar()
        # Held until COMMIT: a delete of the study's last instance waits for it.
        assert _study_row(engine) == (version, mine)
    assert _study_row(engine)[0] == version


def test_a_value_the_index_cannot_hold_is_refused_and_nothing_is_stored(engine: Engine) -> None:
    with pytest.raises(InvalidParameter, match="cannot be stored in the index"):
        _insert(engine, _values(1, patient_name="Doe\x00John"))
    _insert(engine, _values(2))  # the connection went back to the pool usable
    with engine.connect() as conn:
        assert repo.get_by_file_id(conn, "file000000000000000001") is None
        assert repo.get_by_file_id(conn, "file000000000000000002") is not None


def test_a_duplicate_in_a_savepoint_leaves_the_rest_of_the_transaction(engine: Engine) -> None:
    """As group commit runs a batch whose first run failed: each upload in a savepoint."""
    _insert(engine, _values(1))
    with engine.connect() as conn, conn.begin():
        savepoint = conn.begin_nested()
        with pytest.raises(repo.DuplicateKey):
            repo.insert_instance(conn, _values(2, sop_instance_uid="1.2.3.1"), _keys(_values(2)))
        savepoint.rollback()
        with conn.begin_nested():
            repo.insert_instance(conn, _values(3), _keys(_values(3)))
    with engine.connect() as conn:
        assert repo.get_by_file_id(conn, "file000000000000000002") is None
        assert repo.get_by_file_id(conn, "file000000000000000003") is not None


def test_a_connection_lost_mid_transaction_is_unavailable_and_never_lent_again(
    engine: Engine,
) -> None:
    _insert(engine, _values(1))
    with engine.connect() as conn:
        conn.begin()
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(IndexUnavailable):
            repo.insert_instance(conn, _values(2), _keys(_values(2)))
        assert conn.invalidated
    _insert(engine, _values(3))  # a fresh connection, from the pool
    with engine.connect() as conn:
        assert repo.get_by_file_id(conn, "file000000000000000002") is None
        assert repo.get_by_file_id(conn, "file000000000000000003") is not None


def test_a_statement_that_fails_on_a_live_connection_fails_its_upload_alone() -> None:
    """A lock timeout (as a deadlock would): that upload is a 503, the batch's others commit,
    and the connection is rolled back, not lost."""
    require_postgres()
    with postgres_schema() as url:
        index = IndexDatabase(url + "%20-clock_timeout%3D300", pool_size=4)
        index.upgrade()
        try:
            index.commit_grouped(_work(_values(1)))
            other = _values(2, study_instance_uid="7.7.7", series_instance_uid="7.7.7.1")
            with index.engine.connect() as holder, holder.begin():
                holder.execute(text("SELECT 1 FROM studies FOR UPDATE"))  # study 1.2.3.1000
                batch = NextBatch(index, _values(3))
                batch.add("locked", _work(_values(4)))
                batch.add("other", _work(other))
                batch.release()
                outcomes = batch.join()
            assert isinstance(outcomes["locked"], IndexUnavailable), outcomes
            assert isinstance(outcomes["other"], int)
            assert isinstance(outcomes["first"], IndexUnavailable)  # its study was locked too
            index.commit_grouped(_work(_values(5)))  # the pool's connections still serve
            with index.read() as conn:
                stored = {r.file_id for r in repo.list_instances(conn, limit=10)}
            assert stored == {_values(n)["file_id"] for n in (1, 2, 5)}
        finally:
            index.close()


def _work(values: dict[str, Any]) -> Any:
    return lambda conn: repo.insert_instance(conn, values, _keys(values))
