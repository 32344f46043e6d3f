"""Logs: one JSON line per request with its route template, status, duration and request id
(from X-Request-ID or made, and sent back); no patient data and no UID in any line."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Callable

import httpx
import pydicom

from tests.api.dicom_factory import copy_with_new_uid
from tests.conftest import Server
from tests.datafiles import data_file

UID = re.compile(r"\b[0-2](?:\.(?:0|[1-9][0-9]*)){3,}\b")


def _lines(server: Server, request_id: str) -> list[dict[str, object]]:
    out = []
    for line in server.log().splitlines():
        if request_id in line and line.startswith("{"):
            out.append(json.loads(line))
    return out


def _log_once(server: Server, written: Callable[[str], bool], seconds: float = 30) -> str:
    """The server's log once ``written`` holds for it. A request's line is written when its
    worker's event loop ends the turn that answered it, which on a loaded machine can come
    after the client has read the answer, and the request may have gone to any worker."""
    deadline = time.monotonic() + seconds
    log = server.log()
    while not written(log) and time.monotonic() < deadline:
        time.sleep(0.05)
        log = server.log()
    return log


def test_each_request_is_one_json_line_without_patient_data(
    server: Server, client: httpx.Client
) -> None:
    patient = f"Secret^Patient{uuid.uuid4().hex[:6]}"
    data = copy_with_new_uid(data_file("CT_small.dcm"), PatientName=patient)
    ds = pydicom.dcmread(io.BytesIO(data))
    given = f"trace-{uuid.uuid4().hex}"
    up = client.post(
        "/dicom-image",
        content=data,
        headers={"content-type": "application/dicom", "x-request-id": given},
    )
    assert up.headers["x-request-id"] == given
    file_id = up.json()["file_id"]
    made = client.get(f"/dicom-image/{file_id}", params={"dicom_tag": "PatientName"})
    made_id = made.headers["x-request-id"]
    assert made_id and made_id != given
    client.get("/dicomweb/studies", params={"PatientName": patient})
    meta = client.get(
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/metadata"
    )
    missing = client.get("/dicom-image/not-a-file-id-at-all/png")
    ids = (given, made_id, meta.headers["x-request-id"], missing.headers["x-request-id"])
    _log_once(server, lambda log: all(i in log for i in ids))

    (upload,) = _lines(server, given)
    assert upload["route"] == "/dicom-image" and upload["method"] == "POST"
    assert upload["status"] == 201 and upload["file_id"] == file_id
    assert isinstance(upload["duration_ms"], float)
    (lookup,) = _lines(server, made_id)
    assert lookup["route"] == "/dicom-image/{file_id}" and lookup["status"] == 200
    log = server.log()
    assert '"route":"/dicomweb/studies/{study}/series/{series}/metadata"' in log
    assert patient not in log and "Secret" not in log
    for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
        assert uid not in log
    assert not UID.search(log), UID.search(log)


def test_a_request_id_shaped_like_a_uid_is_masked_in_the_log(
    server: Server, client: httpx.Client
) -> None:
    given = f"1.2.840.{uuid.uuid4().int % 10**12}.7.3"
    masked = '"request_id":"<uid>","method":"GET","route":"/healthz"'
    before = server.log().count(masked)  # other tests may have sent such ids already
    answer = client.get("/healthz", headers={"x-request-id": given})
    assert answer.headers["x-request-id"] == given  # the client gets its own id back
    log = _log_once(server, lambda log: log.count(masked) > before)
    assert log.count(masked) == before + 1
    assert given not in log
