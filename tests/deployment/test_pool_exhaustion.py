"""An exhausted index pool: requests past it get a 503 index_unavailable (with Retry-After)
within the pool timeout rather than waiting forever, and the same process serves again, by
itself, once the connections come back. (PostgreSQL: a table lock held from outside makes
every request keep its connection.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.api.test_upload import assert_problem
from tests.conftest import Server, postgres_schema, require_postgres, start_server, stop_server


@pytest.fixture
def small_pool(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    require_postgres()
    with postgres_schema() as url:
        srv = start_server(
            tmp_path / "data",
            {
                "DICOM_FS_DATABASE_URL": url,
                "DICOM_FS_DB_POOL_SIZE": "2",
                "DICOM_FS_DB_POOL_TIMEOUT_SECONDS": "0.5",
                "DICOM_FS_WORKERS": "1",  # one process, one pool: the 8 requests exceed it
            },
        )
        yield srv, url
        stop_server(srv)


def test_an_exhausted_pool_is_a_503_and_the_service_recovers(
    small_pool: tuple[Server, str],
) -> None:
    server, url = small_pool
    with server.client() as c:
        assert c.get("/dicom-image").status_code == 200
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    blocker = engine.connect()
    blocker.execute(text("LOCK TABLE instances IN ACCESS EXCLUSIVE MODE"))
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [
                pool.submit(lambda: httpx.get(f"{server.base_url}/dicom-image", timeout=60))
                for _ in range(8)
            ]
            while not any(f.done() for f in futures):  # those past the pool answer first
                time.sleep(0.05)
            done_early = [f.result() for f in futures if f.done()]
            refused = [r for r in done_early if r.status_code == 503]
            assert refused, [r.status_code for r in done_early]
            for r in refused:
                assert_problem(r, 503, "index_unavailable")
                assert r.headers["retry-after"]
            blocker.rollback()  # the connections come back
            answers = [f.result() for f in futures]
    finally:
        blocker.close()
        engine.dispose()
    assert all(r.status_code in (200, 503) for r in answers)
    assert any(r.status_code == 200 for r in answers)
    with server.client() as c:  # the same process, by itself
        assert c.get("/dicom-image").status_code == 200
