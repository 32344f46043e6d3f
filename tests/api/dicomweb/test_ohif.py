"""The requests the OHIF viewer's DICOMweb data source sends, as it sends them, on every backend.

OHIF (extension-default's DicomWebDataSource, with ``supportsWildcard``, ``enableStudyLazyLoad``
and ``bulkDataURI`` enabled) lists studies with ``limit``/``offset``/``includefield`` and
wildcarded filters, asks for one study by UID, lists its series, reads each series' metadata,
fetches frames with ``transfer-syntax=*`` and shows thumbnails. Each answer is checked for what
OHIF reads from it.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import generate_uid

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.dicomweb.test_stow_wado import _parts
from tests.conftest import Server
from tests.datafiles import data_file

JSON = {"accept": "application/dicom+json"}
FRAMES = {"accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"}


@pytest.fixture
def stored(server: Server) -> dict[str, Any]:
    """A CT series of two and a JPEG 2000 MR instance in one study of a new patient."""
    patient = f"OHIF-{uuid.uuid4().hex[:8]}"
    study, ct, mr = generate_uid(), generate_uid(), generate_uid()
    datasets = []
    for name, series, number in (("CT_small.dcm", ct, 1), ("CT_small.dcm", ct, 2)):
        ds = pydicom.dcmread(io.BytesIO(copy_with_new_uid(data_file(name))))
        ds.InstanceNumber = number
        datasets.append((ds, series))
    datasets.append((pydicom.dcmread(io.BytesIO(copy_with_new_uid(data_file("MR2_J2KR.dcm")))), mr))
    for ds, series in datasets:
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID, ds.PatientName = patient, "Ohif^Test"
        ds.StudyDescription, ds.StudyDate = "Viewer check", "20240301"
    DICOMwebClient(f"{server.base_url}/dicomweb").store_instances([d for d, _ in datasets])
    return {"patient": patient, "study": study, "ct": ct, "mr": mr, "datasets": datasets}


def test_the_study_list_as_ohif_asks_for_it(client: httpx.Client, stored: dict[str, Any]) -> None:
    params = {
        "limit": "101",
        "offset": "0",
        "fuzzymatching": "false",
        "includefield": "00081030,00080060",
        "PatientName": "*ohif*",
        "PatientID": f"*{stored['patient']}*",
        "StudyDate": "20240101-20241231",
        "ModalitiesInStudy": "CT",
    }
    r = client.get("/dicomweb/studies", params=params, headers=JSON)
    assert r.status_code == 200, r.text
    (study,) = r.json()
    assert study["0020000D"]["Value"] == [stored["study"]]
    assert study["00081030"]["Value"] == ["Viewer check"]
    assert study["00080061"]["Value"] == ["CT", "MR"]
    assert study["00201208"]["Value"] == [3]
    assert study["00100010"]["Value"] == [{"Alphabetic": "Ohif^Test"}]
    assert "warning" not in r.headers  # every key OHIF sends is understood

    one = client.get(
        "/dicomweb/studies", params={"StudyInstanceUID": stored["study"]}, headers=JSON
    )
    assert [s["0020000D"]["Value"] for s in one.json()] == [[stored["study"]]]


def test_a_study_opens_as_ohif_opens_it(client: httpx.Client, stored: dict[str, Any]) -> None:
    base = f"/dicomweb/studies/{stored['study']}"
    series = client.get(f"{base}/series", headers=JSON).json()
    assert {s["0020000E"]["Value"][0] for s in series} == {stored["ct"], stored["mr"]}
    for item in series:
        uid = item["0020000E"]["Value"][0]
        metadata = client.get(f"{base}/series/{uid}/metadata", headers=JSON)
        assert metadata.status_code == 200
        instances = metadata.json()
        assert len(instances) == (2 if uid == stored["ct"] else 1)
        for instance in instances:
            sop = instance["00080018"]["Value"][0]
            url = f"{base}/series/{uid}/instances/{sop}"
            pixel_uri = instance["7FE00010"]["BulkDataURI"]
            assert pixel_uri.endswith(f"{url}/bulkdata/7FE00010")  # absolute, on DICOMweb
            frames = client.get(f"{url}/frames/1", headers=FRAMES)
            assert frames.status_code == 200, frames.text
            (frame,) = _parts(frames)
            expected = next(ds for ds, _ in stored["datasets"] if ds.SOPInstanceUID == sop)
            if uid == stored["ct"]:
                assert frames.headers["content-type"].startswith("multipart/related")
                assert frame == expected.PixelData
            else:
                assert b'type="image/jp2"' in frames.headers["content-type"].encode()
                assert frame[:4] == b"\xff\x4f\xff\x51"  # a JPEG 2000 codestream
        thumbnail = client.get(f"{base}/series/{uid}/thumbnail", headers={"accept": "image/jpeg"})
        assert thumbnail.status_code == 200
        assert thumbnail.content[:2] == b"\xff\xd8"
