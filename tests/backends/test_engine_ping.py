"""PostgreSQL connections are pinged before they are lent only where in doubt: a connection
broken while it sat in the pool is still replaced, never lent (as ``pool_pre_ping`` would)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from dicom_file_service.index import engine as engine_module
from dicom_file_service.index.engine import create_index_engine


@pytest.fixture
def engine() -> Iterator[Engine]:
    from tests.conftest import postgres_schema, require_postgres

    require_postgres()
    with postgres_schema() as url:
        eng = create_index_engine(url, pool_size=1)
        yield eng
        eng.dispose()


@pytest.fixture
def pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many pings were sent (one entry each)."""
    sent: list[int] = []
    real = engine.dialect.do_ping

    def counting(dbapi_conn: Any) -> bool:
        sent.append(1)
        return real(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return sent


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(engine: Engine, pid: int) -> None:
    import psycopg

    url = engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    with psycopg.connect(url.split("?")[0], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        admin.execute(  # the backend has gone, and so has its socket's other end
            "SELECT pg_sleep(0.05) FROM pg_stat_activity WHERE pid = %s", (pid,)
        )


def test_a_connection_used_moments_ago_is_lent_without_a_ping(
    engine: Engine, pings: list[int]
) -> None:
    first = _backend_pid(engine)
    pings.clear()
    for _ in range(5):
        assert _backend_pid(engine) == first  # the same connection, lent again
    assert pings == []


def test_a_connection_terminated_while_idle_in_the_pool_is_replaced_not_lent(
    engine: Engine, pings: list[int]
) -> None:
    """The server's farewell is on the socket: pinged, found dead, replaced; the caller
    never sees it (without the check the statement would fail)."""
    first = _backend_pid(engine)
    _terminate(engine, first)
    pings.clear()
    second = _backend_pid(engine)
    assert second != first
    assert len(pings) >= 1


def test_a_connection_idle_for_long_is_pinged(
    engine: Engine, pings: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(engine)
    monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", 0.0)
    pings.clear()
    assert _backend_pid(engine) == first  # alive: kept
    assert pings == [1]
