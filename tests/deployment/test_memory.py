"""Every request's memory is bounded, whatever the file: a deflate bomb, a 1 GB multi-frame
file and a 50 MB text value go through upload, rendering, lookups, bulk data and DICOMweb
with every process of the service staying under 400 MB at its peak."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.api.dicom_factory import deflate_bomb
from tests.api.test_upload import assert_problem
from tests.conftest import Server, child_pids, start_server, stop_server
from tests.datafiles import data_file

LIMIT_MB = 400
FRAMES, SIDE = 512, 1024  # 512 frames of 1024 x 1024 x 16 bits: 1 GiB of Pixel Data


def _peak_mb(pid: int) -> float:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert match
    return int(match.group(1)) / 1024


def _big_multiframe(path: Path) -> None:
    """Written as it goes: the header from pydicom, then the frames, one at a time."""
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Rows = ds.Columns = SIDE
    ds.NumberOfFrames = FRAMES
    del ds.PixelData
    head = io.BytesIO()
    ds.save_as(head, enforce_file_format=True)
    frame = bytes(range(256)) * (SIDE * SIDE * 2 // 256)
    with open(path, "wb") as f:
        f.write(head.getvalue())
        f.write(b"\xe0\x7f\x10\x00OW\x00\x00" + (FRAMES * len(frame)).to_bytes(4, "little"))
        for _ in range(FRAMES):
            f.write(frame)


def _long_text() -> bytes:
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.TextValue = "Findings within normal limits. " * (50 * 1024 * 1024 // 31)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "data")
    yield srv
    stop_server(srv)


def test_peak_memory_stays_under_400_mb_per_process(fresh: Server, tmp_path: Path) -> None:
    big = tmp_path / "big.dcm"
    _big_multiframe(big)
    with fresh.client() as c:
        bomb = c.post(
            "/dicom-image",
            content=deflate_bomb(2 * 1024**3),
            headers={"content-type": "application/dicom"},
        )
        assert_problem(bomb, 422, "invalid_dicom")
        with open(big, "rb") as f:
            up = c.post(
                "/dicom-image",
                content=f,
                headers={"content-type": "application/dicom"},
                timeout=600,
            )
        assert up.status_code == 201, up.text
        file_id, study = up.json()["file_id"], up.json()["study_instance_uid"]
        for frame in (1, 300, FRAMES):
            png = c.get(f"/dicom-image/{file_id}/png", params={"frame": frame})
            assert png.status_code == 200, png.text
        with c.stream("GET", f"/dicom-image/{file_id}/bulkdata/7FE00010") as r:
            assert r.status_code == 200
            assert sum(len(chunk) for chunk in r.iter_bytes()) == FRAMES * SIDE * SIDE * 2
        with c.stream("GET", f"/dicom-image/{file_id}") as r:
            assert sum(len(chunk) for chunk in r.iter_bytes()) == big.stat().st_size
        series = up.json()["series_instance_uid"]
        sop = up.json()["sop_instance_uid"]
        frames = c.get(
            f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/7,400",
            headers={"accept": "multipart/related; type=application/octet-stream"},
        )
        assert frames.status_code == 200
        with c.stream(
            "GET",
            f"/dicomweb/studies/{study}",
            headers={"accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        ) as r:
            assert sum(len(chunk) for chunk in r.iter_bytes()) > big.stat().st_size

        text = c.post(
            "/dicom-image", content=_long_text(), headers={"content-type": "application/dicom"}
        )
        assert text.status_code == 201, text.text
        text_id = text.json()["file_id"]
        for _ in range(20):
            found = c.get(f"/dicom-image/{text_id}", params={"dicom_tag": "(0040,A160)"})
            assert "bulk_data_uri" in found.json()["value"]
        assert len(c.get(f"/dicom-image/{text_id}/bulkdata/0040A160").content) > 50_000_000

    peaks = {pid: _peak_mb(pid) for pid in [fresh.process.pid, *child_pids(fresh.process.pid)]}
    print("peak RSS per process, MB:", {pid: round(mb) for pid, mb in peaks.items()})
    assert max(peaks.values()) < LIMIT_MB, peaks
