"""Background rendering (DICOM_FS_PRERENDER=true): each new instance's default PNG and
thumbnail are made ahead of the first request; a request never waits on the queue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import post_raw
from tests.conftest import Backend, Server, start_server, stop_server
from tests.datafiles import data_file


@pytest.fixture(scope="module")
def embedded_prerendering(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("pre") / "data", {"DICOM_FS_PRERENDER": "true"})
    yield srv
    stop_server(srv)
    assert "Traceback" not in srv.log()


def test_the_embedded_service_prerenders_new_instances(embedded_prerendering: Server) -> None:
    with embedded_prerendering.client() as c:
        file_ids = [
            post_raw(c, copy_with_new_uid(data_file(name))).json()["file_id"]
            for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")  # rtplan: no image
        ]
    deadline = time.monotonic() + 30
    while True:
        keys = embedded_prerendering.stored_keys("renderings")
        made = {
            fid: sorted(k.rsplit("/", 1)[1] for k in keys if f"/{fid}/" in k) for fid in file_ids
        }
        if len(made[file_ids[0]]) == 2 and len(made[file_ids[1]]) == 2:
            break
        assert time.monotonic() < deadline, made
        time.sleep(0.1)
    assert made[file_ids[0]] == ["r1-f1-file-128x128-8.png", "r1-f1-file-8.png"]
    assert made[file_ids[2]] == []  # nothing to render: the job is done, not retried forever


def test_a_png_is_rendered_on_demand_while_its_job_waits(backend: Backend, tmp_path: Path) -> None:
    """On PostgreSQL jobs wait for a worker (none runs here); a request does not wait."""
    if "DICOM_FS_DATABASE_URL" not in backend.env:
        pytest.skip("the embedded queue runs inside the service: no job waits for a worker")
    srv = start_server(tmp_path / "data", {**backend.env, "DICOM_FS_PRERENDER": "true"})
    try:
        with srv.client() as c:
            file_id = post_raw(c, copy_with_new_uid(data_file("CT_small.dcm"))).json()["file_id"]
            started = time.monotonic()
            r = c.get(f"/dicom-image/{file_id}/png")
            assert r.status_code == 200
            assert time.monotonic() - started < 5
    finally:
        stop_server(srv)
    url = backend.env["DICOM_FS_DATABASE_URL"]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            status = conn.execute(
                text("SELECT status FROM procrastinate_jobs WHERE args->>'file_id' = :f"),
                {"f": file_id},
            ).scalar_one()
    finally:
        engine.dispose()
    assert status == "todo"  # enqueued with the row, still waiting: the PNG did not wait
