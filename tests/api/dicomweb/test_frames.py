"""WADO-RS frames: one frame's stored bytes, native or compressed, as OHIF asks for them."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pydicom
from pydicom.encaps import generate_frames

from tests.api.dicomweb.test_stow_wado import _parts
from tests.api.test_upload import assert_problem
from tests.datafiles import data_file
from tests.unit.service.test_rendering import _multiframe

OHIF = "multipart/related; type=application/octet-stream; transfer-syntax=*"
JPEG = "multipart/related; type=image/jpeg"


def _store(client: httpx.Client, data: bytes) -> dict[str, str]:
    r = client.post("/dicom-image", content=data, headers={"content-type": "application/dicom"})
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def _frames_url(body: dict[str, str], frames: str) -> str:
    return (
        f"/dicomweb/studies/{body['study_instance_uid']}/series/{body['series_instance_uid']}"
        f"/instances/{body['sop_instance_uid']}/frames/{frames}"
    )


def test_native_frames_are_their_bytes(client: httpx.Client, tmp_path: Path) -> None:
    path = _multiframe(tmp_path, 12, compressed=False)
    data = path.read_bytes()
    body = _store(client, data)
    r = client.get(_frames_url(body, "3,12"), headers={"accept": OHIF})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(
        'multipart/related; type="application/octet-stream"'
    )
    pixels = pydicom.dcmread(io.BytesIO(data)).pixel_array
    assert _parts(r) == [pixels[2].astype("<u2").tobytes(), pixels[11].astype("<u2").tobytes()]


def test_compressed_frames_come_as_stored(client: httpx.Client, tmp_path: Path) -> None:
    path = _multiframe(tmp_path, 12, compressed=True)  # RLE, no offset table
    data = path.read_bytes()
    body = _store(client, data)
    r = client.get(_frames_url(body, "7"), headers={"accept": OHIF})
    assert r.status_code == 200, r.text
    ds = pydicom.dcmread(io.BytesIO(data))
    expected = list(generate_frames(ds.PixelData, number_of_frames=12))[6]
    assert _parts(r) == [expected]
    assert (
        "image/dicom-rle" in r.text[:300] and "transfer-syntax=1.2.840.10008.1.2.5" in r.text[:300]
    )
    as_jpeg = client.get(_frames_url(body, "7"), headers={"accept": JPEG})
    assert_problem(as_jpeg, 406, "not_acceptable")  # 16-bit: no encoder writes it in JPEG


def test_compressed_frames_are_decoded_for_octet_stream_in_the_default_syntax(
    client: httpx.Client, tmp_path: Path
) -> None:
    """Without transfer-syntax=*, octet-stream means Explicit VR Little Endian: decoded."""
    data = _multiframe(tmp_path, 12, compressed=True).read_bytes()
    body = _store(client, data)
    pixels = pydicom.dcmread(io.BytesIO(data)).pixel_array
    for accept in (
        "multipart/related; type=application/octet-stream",
        "multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
    ):
        r = client.get(_frames_url(body, "2,11"), headers={"accept": accept})
        assert r.status_code == 200, r.text
        assert "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1" in r.text[:300]
        assert _parts(r) == [pixels[1].astype("<u2").tobytes(), pixels[10].astype("<u2").tobytes()]
    j2k = data_file("MR2_J2KR.dcm").read_bytes()
    r = client.get(
        _frames_url(_store(client, j2k), "1"),
        headers={"accept": "multipart/related; type=application/octet-stream"},
    )
    expected = pydicom.dcmread(io.BytesIO(j2k)).pixel_array
    assert _parts(r) == [expected.astype(expected.dtype.newbyteorder("<")).tobytes()]


def test_a_jpeg_2000_frame_is_its_bitstream(client: httpx.Client) -> None:
    data = data_file("MR2_J2KR.dcm").read_bytes()
    body = _store(client, data)
    r = client.get(
        _frames_url(body, "1"), headers={"accept": 'multipart/related; type="image/jp2"'}
    )
    assert r.status_code == 200, r.text
    ds = pydicom.dcmread(io.BytesIO(data))
    assert _parts(r) == [next(generate_frames(ds.PixelData, number_of_frames=1))]


def test_frames_errors_are_problems(client: httpx.Client) -> None:
    body = _store(client, data_file("CT_small.dcm").read_bytes())
    assert_problem(client.get(_frames_url(body, "2")), 400, "frame_out_of_range")
    assert_problem(client.get(_frames_url(body, "x")), 400, "invalid_parameter")
    rtplan = _store(client, data_file("rtplan.dcm").read_bytes())
    assert_problem(client.get(_frames_url(rtplan, "1")), 422, "no_pixel_data")
    assert np.frombuffer(_parts(client.get(_frames_url(body, "1")))[0], "<i2").size == 128 * 128
