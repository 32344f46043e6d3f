"""When the object store or the database goes away, the service answers 503 problems (never
500) and says so on /readyz; when it comes back, the same processes recover on their own."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from dicom_file_service.service.ids import instance_key
from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import post_raw
from tests.conftest import (
    Server,
    child_pids,
    new_bucket_name,
    postgres_schema,
    require_postgres,
    start_server,
    stop_server,
)
from tests.datafiles import data_file
from tests.deployment.conftest import wait_for
from tests.s3server import S3Server, make_s3_server
from tests.tcp_proxy import TcpProxy


def _ready(srv: Server) -> int:
    return httpx.get(f"{srv.base_url}/readyz", timeout=30).status_code


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"]


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[S3Server]:
    """A SeaweedFS of this test's own, to stop and start again."""
    srv = make_s3_server(tmp_path / "seaweedfs")
    srv.start()
    yield srv
    srv.stop()


def test_the_service_rides_out_an_object_store_outage(own_s3: S3Server, tmp_path: Path) -> None:
    require_postgres()
    with postgres_schema() as database_url:
        env = {"DICOM_FS_DATABASE_URL": database_url, **own_s3.env(new_bucket_name(), "d")}
        env["DICOM_FS_S3_TIMEOUT_SECONDS"] = "5"
        srv = start_server(tmp_path / "srv" / "data", env)
        try:
            with srv.client() as c:
                file_id = post_raw(c, copy_with_new_uid(data_file("CT_small.dcm"))).json()[
                    "file_id"
                ]
                # As if stored through another instance: this one keeps no copy of it.
                copies = srv.settings().resolved_scratch_dir() / "copies"
                (copies / quote(instance_key(file_id), safe="")).unlink()
                # A JPEG 2000 decode: a rendering dear enough to be shared, so its cache
                # write meets the outage too.
                near_bytes = copy_with_new_uid(data_file("MR2_J2KR.dcm"))
                near = post_raw(c, near_bytes).json()["file_id"]
                grant = c.post("/dicom-image/upload-url").json()
                direct = copy_with_new_uid(data_file("CT_small.dcm"))
                put = httpx.put(grant["upload_url"], content=direct, timeout=30)
                assert put.status_code == 200
                complete = f"/dicom-image/uploads/{grant['upload_id']}/complete"
                own_s3.stop()
                assert _ready(srv) == 503
                _assert_unavailable(c.post(complete))  # the uploaded bytes are kept
                _assert_unavailable(post_raw(c, copy_with_new_uid(data_file("CT_small.dcm"))))
                _assert_unavailable(c.get(f"/dicom-image/{file_id}"))
                _assert_unavailable(c.get(f"/dicom-image/{file_id}/png"))
                _assert_unavailable(c.get(f"/dicom-image/{file_id}/bulkdata/7FE00010"))
                # The header lives in the index: lookups go on.
                assert c.get(f"/dicom-image/{file_id}?dicom_tag=PatientID").status_code == 200
                # A file this instance stored lately is at hand: its copy answers meanwhile.
                assert c.get(f"/dicom-image/{near}").content == near_bytes
                assert c.get(f"/dicom-image/{near}/png").status_code == 200

                own_s3.start()
                wait_for(lambda: _ready(srv) == 200, 60, "readiness after the store returned")
                assert c.get(f"/dicom-image/{file_id}/png").status_code == 200
                again = post_raw(c, copy_with_new_uid(data_file("CT_small.dcm")))
                assert again.status_code == 201, again.text
                completed = c.post(complete)  # the retry the 503 asked for
                assert completed.status_code == 201, completed.text
                assert c.get(f"/dicom-image/{completed.json()['file_id']}").content == direct
        finally:
            stop_server(srv)
    assert "Traceback" not in srv.log()
    assert "could not cache a rendering: the store is unavailable" in srv.log()


def _workers(server: Server) -> list[int]:
    """The uvicorn worker processes of a served instance (not its resource tracker)."""
    workers = []
    for pid in child_pids(server.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing-fork" in cmdline and b"resource_tracker" not in cmdline:
            workers.append(pid)
    return workers


def test_the_service_rides_out_a_database_outage(s3_server: S3Server, tmp_path: Path) -> None:
    require_postgres()
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.start()
    with postgres_schema() as direct_url:
        via_proxy = direct_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        env = {"DICOM_FS_DATABASE_URL": via_proxy, **s3_server.env(new_bucket_name(), "d")}
        srv = start_server(tmp_path / "srv" / "data", env)
        try:
            with srv.client() as c:
                wait_for(lambda: srv.log().count('"service started"') == 2, 60, "both workers")
                file_id = post_raw(c, copy_with_new_uid(data_file("CT_small.dcm"))).json()[
                    "file_id"
                ]
                proxy.stop()
                assert _ready(srv) == 503
                # A worker that dies now is started again by the supervisor, and comes up
                # without the database (it answers 503s until the database is back).
                os.kill(_workers(srv)[0], signal.SIGKILL)
                wait_for(lambda: srv.log().count('"service started"') == 3, 60, "the new worker")
                for _ in range(3):  # every pooled connection is broken: none may leak a 500
                    _assert_unavailable(c.get(f"/dicom-image/{file_id}?dicom_tag=PatientID"))
                    _assert_unavailable(c.get(f"/dicom-image/{file_id}"))
                    _assert_unavailable(c.get(f"/dicom-image/{file_id}/png"))
                    _assert_unavailable(c.get("/dicom-image"))
                    _assert_unavailable(post_raw(c, copy_with_new_uid(data_file("CT_small.dcm"))))

                proxy.start()
                wait_for(lambda: _ready(srv) == 200, 60, "readiness after the database returned")
                tag = c.get(f"/dicom-image/{file_id}?dicom_tag=PatientID")
                assert tag.status_code == 200, tag.text
                assert c.get(f"/dicom-image/{file_id}/png").status_code == 200
                again = post_raw(c, copy_with_new_uid(data_file("CT_small.dcm")))
                assert again.status_code == 201, again.text
        finally:
            stop_server(srv)
            proxy.stop()
    assert "Traceback" not in srv.log()
