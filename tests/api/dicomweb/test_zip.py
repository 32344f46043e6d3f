"""WADO-RS's study and series retrieve as ``application/zip``: one folder per series, readable
names made safe from hostile and unicode attribute values, every member byte for byte the
stored file, streamed (chunked, no length); on every backend."""

from __future__ import annotations

import io
import zipfile
from urllib.parse import unquote

import httpx
from pydicom.uid import generate_uid

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import assert_problem
from tests.datafiles import data_file

ZIP = {"accept": "application/zip"}


def _store(client: httpx.Client, **attributes: str) -> tuple[str, bytes]:
    """A CT_small copy with ``attributes``, uploaded: (its SOP Instance UID, its bytes)."""
    data = copy_with_new_uid(data_file("CT_small.dcm"), **attributes)
    answer = client.post("/dicom-image", files={"file": ("ct.dcm", data)})
    assert answer.status_code == 201, answer.text
    return answer.json()["sop_instance_uid"], data


def _a_study(client: httpx.Client) -> tuple[str, dict[str, str], dict[str, bytes]]:
    """A study of three series (two alike but for their UID) of several instances, for a
    patient named to climb out of the folder, with a unicode description and a control
    character: (its UID, series UID by name, bytes by expected member path)."""
    study = generate_uid()
    common = {
        "SpecificCharacterSet": "ISO_IR 192",  # first: the values below are UTF-8
        "PatientName": "../../etc/passwd",
        "PatientID": "P1",
        "StudyInstanceUID": study,
        "StudyDate": "20240102",
        "StudyDescription": "Thorax \u00fcber\u2002\u80f8\u90e8\x07",
        "Modality": "CT",
    }
    folder = "_._etc_passwd_20240102_Thorax \u00fcber \u80f8\u90e8"
    plan = {
        "bone": ("2", "Axial/Bone", [3, 1, 2], "2_CT_Axial_Bone"),
        "again": ("2", "Axial/Bone", [1, 2], "2_CT_Axial_Bone_2"),
        "scout": ("1", "Scout: <AP>", [1], "1_CT_Scout_ _AP_"),
    }
    series: dict[str, str] = {}
    stored: dict[str, bytes] = {}
    for name, (number, description, numbers, series_folder) in plan.items():
        series[name] = generate_uid()
        for n in numbers:
            sop, data = _store(
                client,
                **common,
                SeriesInstanceUID=series[name],
                SeriesNumber=number,
                SeriesDescription=description,
                InstanceNumber=str(n),
            )
            stored[f"{folder}/{series_folder}/{n:04d}_{sop}.dcm"] = data
    return study, series, stored


def _members(answer: httpx.Response) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert archive.testzip() is None  # every member's CRC checks
        for info in archive.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
        return {info.filename: archive.read(info) for info in archive.infolist()}


def test_a_study_is_one_zip_of_its_files_as_stored(client: httpx.Client) -> None:
    study, _, stored = _a_study(client)
    answer = client.get(f"/dicomweb/studies/{study}", headers=ZIP)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="_._etc_passwd_20240102_Thorax _ber _')
    utf8 = disposition.split("filename*=UTF-8''", 1)[1]
    assert unquote(utf8) == "_._etc_passwd_20240102_Thorax \u00fcber \u80f8\u90e8.zip"
    members = _members(answer)
    # Series by Series Number (then as stored), instances by Instance Number: as a viewer
    # stacks them.
    order = ["1_CT_Scout_ _AP_", "2_CT_Axial_Bone", "2_CT_Axial_Bone_2"]
    assert list(members) == sorted(stored, key=lambda n: (order.index(n.split("/")[1]), n))
    assert members == stored  # byte for byte
    for name in members:
        parts = name.split("/")
        assert len(parts) == 3 and ".." not in name and "\\" not in name
        assert all(part == part.strip(" .") and part.isprintable() for part in parts)


def test_a_series_is_one_zip_and_asked_by_the_query_parameter_too(client: httpx.Client) -> None:
    study, series, stored = _a_study(client)
    wanted = {k: v for k, v in stored.items() if "/2_CT_Axial_Bone/" in k}
    url = f"/dicomweb/studies/{study}/series/{series['bone']}"
    answer = client.get(url, headers=ZIP)
    assert answer.status_code == 200
    assert _members(answer) == wanted
    disposition = answer.headers["content-disposition"]
    assert 'filename="_._etc_passwd_20240102_Thorax _ber ___2_CT_Axial_Bone.zip"' in disposition
    # A link cannot set Accept: PS3.18's accept query parameter says it (the browser's own
    # Accept header notwithstanding).
    linked = client.get(
        url, params={"accept": "application/zip"}, headers={"accept": "text/html,*/*;q=0.8"}
    )
    assert linked.headers["content-type"] == "application/zip"
    assert _members(linked) == wanted


def test_the_zip_is_streamed(client: httpx.Client) -> None:
    study, _, _ = _a_study(client)
    with client.stream("GET", f"/dicomweb/studies/{study}", headers=ZIP) as answer:
        assert answer.status_code == 200
        assert answer.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in answer.headers
        body = b"".join(answer.iter_bytes())
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert len(archive.namelist()) == 6
        # Written as a stream: each member's CRC and sizes follow its data.
        assert all(info.flag_bits & 0x08 for info in archive.infolist())


def test_zip_negotiation(client: httpx.Client) -> None:
    study, series, _ = _a_study(client)
    url = f"/dicomweb/studies/{study}"
    preferred = {"accept": 'multipart/related; type="application/dicom", application/zip'}
    assert (
        client.get(url, headers=preferred).headers["content-type"].startswith("multipart/related")
    )
    weighted = {"accept": 'multipart/related; type="application/dicom"; q=0.5, application/zip'}
    assert client.get(url, headers=weighted).headers["content-type"] == "application/zip"
    assert client.get(url).headers["content-type"].startswith("multipart/related")
    recoded = {"accept": "application/zip; transfer-syntax=1.2.840.10008.1.2.4.50"}
    body = assert_problem(client.get(url, headers=recoded), 406, "not_acceptable")
    assert "application/zip" in str(body["detail"])
    instance = client.get(f"{url}/series/{series['scout']}", headers={"accept": "application/json"})
    assert instance.status_code == 406


def test_an_unknown_study_or_series_is_a_404(client: httpx.Client) -> None:
    answer = client.get(f"/dicomweb/studies/{generate_uid()}", headers=ZIP)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")
    study, _, _ = _a_study(client)
    missing = client.get(f"/dicomweb/studies/{study}/series/{generate_uid()}", headers=ZIP)
    assert missing.status_code == 404
