"""An archive keeps what it is sent: every test file and every imperfect one, end to end.

Each of pydicom's and pydicom-data's test files and each imperfect file of
``tests.imperfect_files`` is uploaded, downloaded, rendered, asked for its metadata and its
first frame, and deleted. A file is either stored and comes back byte for byte, or it is one
``REFUSED`` names, with the reason, and answered 4xx; ``REFUSED`` is checked to be exact.
Every file whose first frame decodes in-process renders; no request answers 5xx.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from urllib.parse import quote

import httpx
import pydicom
import pytest

from dicom_file_service.dicom.pixels import decode_frame, read_header
from tests.api.test_upload import post_raw
from tests.datafiles import all_candidate_files
from tests.imperfect_files import IMPERFECT

# The makers write invalid values on purpose; pydicom warns of each.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

#: Bundled files the archive refuses, and why: each cannot be kept (cut short, no identity,
#: not DICOM). Everything else must be stored.
REFUSED: dict[str, str] = {
    "emri_small_jpeg_2k_lossless_too_short.dcm": "cut inside its encapsulated pixel data",
    "MR_truncated.dcm": "Pixel Data runs past the end of the file",
    "SC_rgb_jpeg.dcm": "Pixel Data declares 65535 bytes, 3522 remain",
    "rtplan_truncated.dcm": "cut inside an element",
    "JPEGLSNearLossless_08.dcm": "no Study or Series Instance UID",
    "JPEGLSNearLossless_16.dcm": "no Study or Series Instance UID",
    "SC_rgb_jls_lossy_line.dcm": "no Study or Series Instance UID",
    "SC_rgb_jls_lossy_sample.dcm": "no Study or Series Instance UID",
    "UN_sequence.dcm": "no UIDs",
    "empty_charset_LEI.dcm": "no UIDs",
    "meta_missing_tsyntax.dcm": "no UIDs",
    "nested_priv_SQ.dcm": "no UIDs",
    "no_meta_group_length.dcm": "no UIDs",
    "priv_SQ.dcm": "no UIDs",
    "no_meta.dcm": "a bare data set without a SOP Instance UID",
    "README": "text",
    **{
        name: "a DICOMDIR: a media directory, not an instance (no SOP Instance UID)"
        for name in (
            "DICOMDIR",
            "DICOMDIR-bigEnd",
            "DICOMDIR-empty.dcm",
            "DICOMDIR-implicit",
            "DICOMDIR-nooffset",
            "DICOMDIR-nopatient",
            "DICOMDIR-reordered",
        )
    },
}

_NOT_DICOM_SUFFIXES = {".txt", ".icc", ".dump", ".json", ".gz", ".py", ".bz2", ".zip", ".pyc"}


def _bundled() -> list[Path]:
    return [
        p
        for p in all_candidate_files()
        if p.suffix.lower() not in _NOT_DICOM_SUFFIXES and p.stat().st_size < 20_000_000
    ]


def _decodes(path: Path) -> bool:
    """Whether frame 1 decodes in-process with the service's own decoder chain."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open(path, "rb") as f:
                ds = read_header(f)
                decode_frame(f, ds, 1, max_pixels=50_000_000)
        except Exception:
            return False
    return True


def _check_round_trip(
    client: httpx.Client, data: bytes, renders: bool, answer: httpx.Response | None = None
) -> dict[str, object]:
    """Upload (unless ``answer`` is the upload's), download, render, metadata, frame 1,
    delete; returns the upload's answer."""
    answer = answer if answer is not None else post_raw(client, data)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    file_id = body["file_id"]
    try:
        assert client.get(f"/dicom-image/{file_id}").content == data
        png = client.get(f"/dicom-image/{file_id}/png")
        if renders:
            assert png.status_code == 200, png.text
            assert png.content.startswith(b"\x89PNG")
        else:
            assert 400 <= png.status_code < 500, png.text
            assert png.headers["content-type"].startswith("application/problem+json")
        instance = "/dicomweb/studies/{}/series/{}/instances/{}".format(
            *(
                quote(str(body[k]), safe="")
                for k in ("study_instance_uid", "series_instance_uid", "sop_instance_uid")
            )
        )
        metadata = client.get(f"{instance}/metadata", headers={"accept": "application/dicom+json"})
        assert metadata.status_code == 200, metadata.text
        retrieved = client.get(
            instance,
            headers={"accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        )
        assert retrieved.status_code == 200 and data in retrieved.content
        default = client.get(instance)  # PS3.18's default: Explicit VR Little Endian
        assert default.status_code < 500, default.text
        for path in (f"{instance}/frames/1", f"{instance}/rendered", f"{instance}/thumbnail"):
            assert client.get(path).status_code < 500, path
    finally:
        assert client.delete(f"/dicom-image/{file_id}").status_code == 204
    return body


@pytest.mark.parametrize("name", sorted(IMPERFECT))
def test_an_imperfect_file_is_kept_byte_for_byte_and_its_fault_reported(
    client: httpx.Client, name: str
) -> None:
    imperfect = IMPERFECT[name]
    body = _check_round_trip(client, imperfect.make(), imperfect.renders)
    assert isinstance(body["warnings"], list)


def test_the_warnings_stay_on_the_record(client: httpx.Client) -> None:
    answer = post_raw(client, IMPERFECT["no_pixel_data_under_an_image_module"].make())
    assert answer.status_code == 201
    body = answer.json()
    assert any("has no Pixel Data" in w for w in body["warnings"])
    try:
        listed = client.get("/dicom-image", params={"limit": 1000}).json()
        items = listed["items"] if isinstance(listed, dict) else listed
        (item,) = [i for i in items if i["file_id"] == body["file_id"]]
        assert item["warnings"] == body["warnings"]
        again = post_raw(client, IMPERFECT["no_pixel_data_under_an_image_module"].make())
        assert again.status_code == 201  # another instance: the same fault, said again
        client.delete(f"/dicom-image/{again.json()['file_id']}")
    finally:
        client.delete(f"/dicom-image/{body['file_id']}")


def test_stow_answers_a_kept_imperfect_instance_with_a_warning_reason(
    client: httpx.Client,
) -> None:
    data = IMPERFECT["pixel_data_longer"].make()
    boundary = "imperfect"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answer = client.post(
        "/dicomweb/studies",
        content=body,
        headers={
            "content-type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "accept": "application/dicom+json",
        },
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["warning"].startswith("299 ")
    (referenced,) = answer.json()["00081199"]["Value"]
    assert referenced["00081196"]["Value"] == [0xB007]  # Warning Reason
    sop = referenced["00081155"]["Value"][0]
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    assert sop == ds.SOPInstanceUID
    found = client.get("/dicom-image", params={"limit": 1000}).json()
    items = found["items"] if isinstance(found, dict) else found
    for item in items:
        if item["sop_instance_uid"] == sop:
            assert item["warnings"]
            client.delete(f"/dicom-image/{item['file_id']}")


def test_every_bundled_file_is_kept_or_refused_for_a_reason_named(client: httpx.Client) -> None:
    refused, stored = {}, 0
    for path in _bundled():
        data = path.read_bytes()
        answer = post_raw(client, data)
        assert answer.status_code < 500, (path.name, answer.text)
        if answer.status_code == 409:  # a twin with the same SOP Instance UID is stored
            pytest.fail(f"{path.name}: a twin was not deleted: {answer.text}")
        if answer.status_code >= 400:
            assert answer.headers["content-type"].startswith("application/problem+json")
            refused[path.name] = answer.json()["detail"]
            continue
        ours = answer.status_code == 201  # else the same bytes were stored already
        if not ours:
            client.delete(f"/dicom-image/{answer.json()['file_id']}")
        _check_round_trip(client, data, _decodes(path), answer if ours else None)
        stored += 1
    assert set(refused) == set(REFUSED), sorted(set(refused) ^ set(REFUSED))
    assert stored >= 150
