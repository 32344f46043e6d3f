"""kill -9 during concurrent uploads, three times: every acknowledged file comes back byte
for byte, and every listed file is whole (its bytes, its header and its rendering)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.api.dicom_factory import copy_with_new_uid
from tests.conftest import Server, child_pids, start_server, stop_server
from tests.datafiles import data_file

UPLOADERS = 4


def _kill_9(server: Server) -> None:
    """The service and its parser processes, at once, as a power cut would."""
    for pid in [server.process.pid, *child_pids(server.process.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=30)
    server.log_file.close()


def test_three_kills_during_uploads_lose_nothing_acknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    acknowledged: dict[str, bytes] = {}
    lock = threading.Lock()
    for _round in range(3):
        server = start_server(data_dir)
        stop = threading.Event()

        def upload(base_url: str = server.base_url, stop: threading.Event = stop) -> None:
            with httpx.Client(base_url=base_url, timeout=30) as c:
                while not stop.is_set():
                    data = copy_with_new_uid(data_file("CT_small.dcm"))
                    try:
                        r = c.post(
                            "/dicom-image",
                            content=data,
                            headers={"content-type": "application/dicom"},
                        )
                    except httpx.HTTPError:
                        return  # the server died mid-request: not acknowledged
                    if r.status_code == 201:
                        with lock:
                            acknowledged[r.json()["file_id"]] = data

        threads = [threading.Thread(target=upload) for _ in range(UPLOADERS)]
        for t in threads:
            t.start()
        # Killed once this round has had uploads acknowledged, as many may be in flight.
        enough, deadline = len(acknowledged) + 15, time.monotonic() + 30
        while len(acknowledged) < enough and time.monotonic() < deadline:
            time.sleep(0.05)
        _kill_9(server)
        stop.set()
        for t in threads:
            t.join(timeout=30)

    server = start_server(data_dir)
    try:
        with server.client() as c:
            assert len(acknowledged) >= 45
            for file_id, data in acknowledged.items():
                assert c.get(f"/dicom-image/{file_id}").content == data, file_id
            listed: list[dict[str, object]] = []
            cursor: str | None = None
            while True:  # every page: the uploads are fast enough to pass one page's limit
                params: dict[str, object] = {"limit": 1000}
                if cursor is not None:
                    params["cursor"] = cursor
                page = c.get("/dicom-image", params=params).json()
                listed += page["items"]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert set(acknowledged) <= {item["file_id"] for item in listed}
            for item in listed:  # acknowledged or not, a listed file is whole
                file_id = item["file_id"]
                assert len(c.get(f"/dicom-image/{file_id}").content) == item["size"]
                tag = c.get(f"/dicom-image/{file_id}", params={"dicom_tag": "PatientName"})
                assert tag.status_code == 200
                assert c.get(f"/dicom-image/{file_id}/png").status_code == 200
    finally:
        stop_server(server)
