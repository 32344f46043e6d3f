"""Graceful shutdown: on SIGTERM an upload in flight finishes and is stored; one that cannot
finish within the grace period is abandoned cleanly (nothing stored, no staged bytes left)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.api.dicom_factory import copy_with_new_uid
from tests.conftest import start_server, stop_server
from tests.datafiles import data_file


def _trickle(data: bytes, pieces: int, pause: float) -> Iterator[bytes]:
    step = len(data) // pieces + 1
    for i in range(0, len(data), step):
        yield data[i : i + step]
        time.sleep(pause)


def _upload_in_background(base_url: str, body: Iterator[bytes]) -> dict[str, object]:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            with httpx.Client(base_url=base_url, timeout=60) as c:
                outcome["response"] = c.post(
                    "/dicom-image", content=body, headers={"content-type": "application/dicom"}
                )
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    outcome["thread"] = thread
    return outcome


def test_an_upload_in_flight_at_sigterm_finishes_and_is_stored(tmp_path: Path) -> None:
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    srv = start_server(tmp_path / "data")
    upload = _upload_in_background(srv.base_url, _trickle(data, 10, 0.2))
    time.sleep(0.6)  # the upload is arriving
    srv.process.send_signal(signal.SIGTERM)
    upload["thread"].join(timeout=30)  # type: ignore[attr-defined]
    srv.process.wait(timeout=30)
    response = upload.get("response")
    assert isinstance(response, httpx.Response), upload.get("error")
    assert response.status_code == 201, response.text
    srv.log_file.close()
    again = start_server(tmp_path / "data")
    try:
        with again.client() as c:
            assert c.get(f"/dicom-image/{response.json()['file_id']}").content == data
    finally:
        stop_server(again)


def test_an_upload_that_outlasts_the_grace_period_is_abandoned_cleanly(tmp_path: Path) -> None:
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    srv = start_server(tmp_path / "data", {"DICOM_FS_SHUTDOWN_GRACE_SECONDS": "1"})
    upload = _upload_in_background(srv.base_url, _trickle(data, 20, 0.5))  # 10 s to arrive
    time.sleep(1)
    srv.process.send_signal(signal.SIGTERM)
    srv.process.wait(timeout=30)
    upload["thread"].join(timeout=30)  # type: ignore[attr-defined]
    assert "response" not in upload or upload["response"].status_code >= 500  # type: ignore[attr-defined]
    srv.log_file.close()
    assert srv.scratch_files() == []  # the staged bytes went with the request
    again = start_server(tmp_path / "data")
    try:
        with again.client() as c:
            assert c.get("/dicom-image").json()["items"] == []
    finally:
        stop_server(again)
