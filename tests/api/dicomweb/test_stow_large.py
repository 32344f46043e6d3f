"""A large STOW-RS request is stored in bounded memory: the body streams through, one part at a
time to scratch, whatever its size.

512 MB in 128 parts of 4 MB, generated while sent (the client holds one part at a time). If
the service held the body, or every part, its peak memory would grow by at least that much;
it must grow by less than a fifth of it.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.api.dicom_factory import copy_with_new_uid
from tests.conftest import Server, start_server, stop_server
from tests.datafiles import data_file

PARTS = 128
PART_BYTES = 4 * 1024 * 1024
UID_ROOT = "1.2.826.0.1.3680043.8.498.77"  # + a 12-digit number: every UID the same length


def _template(study: str) -> bytes:
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{UID_ROOT}{0:012d}"
    ds.Rows = ds.Columns = 1024
    ds.NumberOfFrames = 2
    ds.PixelData = bytes(PART_BYTES)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _body(template: bytes, boundary: str) -> Iterator[bytes]:
    marker = f"{UID_ROOT}{0:012d}".encode()
    for n in range(1, PARTS + 1):
        part = template.replace(marker, f"{UID_ROOT}{n:012d}".encode())
        yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        yield part
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match
    return int(match.group(1)) / 1024


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own, so that its peak memory is this test's alone."""
    srv = start_server(tmp_path / "data")
    yield srv
    stop_server(srv)


def test_a_512_mb_stow_request_is_stored_in_bounded_memory(fresh_server: Server) -> None:
    study = generate_uid()
    template = _template(study)
    boundary = uuid.uuid4().hex
    headers = {
        "content-type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "accept": "application/dicom+json",
    }
    with fresh_server.client() as client:
        small = copy_with_new_uid(data_file("CT_small.dcm"))
        warm = b"".join(
            [b"--warm\r\nContent-Type: application/dicom\r\n\r\n", small, b"\r\n--warm--\r\n"]
        )
        warm_type = 'multipart/related; type="application/dicom"; boundary=warm'
        first = client.post(
            "/dicomweb/studies", content=warm, headers={**headers, "content-type": warm_type}
        )
        assert first.status_code == 200, first.text
        before = _peak_mb(fresh_server.process.pid)
        r = client.post(
            "/dicomweb/studies", content=_body(template, boundary), headers=headers, timeout=600
        )
        assert r.status_code == 200, r.text[:500]
        assert len(r.json()["00081199"]["Value"]) == PARTS
        grown = _peak_mb(fresh_server.process.pid) - before
        found = client.get("/dicomweb/studies", params={"StudyInstanceUID": study}).json()
        assert found[0]["00201208"]["Value"] == [PARTS]
    assert grown < PARTS * PART_BYTES / 1024**2 / 5, f"peak memory grew by {grown:.0f} MB"
