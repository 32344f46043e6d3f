"""STOW-RS and WADO-RS retrieve/metadata through a client we did not write (dicomweb-client),
on every backend; and the failure responses of PS3.18 for bad parts."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import assert_problem
from tests.conftest import Server, start_server, stop_server
from tests.datafiles import data_file


def _study(n_series: int = 2, per_series: int = 2) -> list[Dataset]:
    """A study of CT_small copies: ``n_series`` series of ``per_series`` instances."""
    study = generate_uid()
    out = []
    for _ in range(n_series):
        series = generate_uid()
        for _ in range(per_series):
            ds = pydicom.dcmread(io.BytesIO(copy_with_new_uid(data_file("CT_small.dcm"))))
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            out.append(ds)
    return out


def _bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


@pytest.fixture
def web(server: Server) -> DICOMwebClient:
    return DICOMwebClient(f"{server.base_url}/dicomweb")


def test_a_study_stored_with_stow_is_retrieved_whole_and_in_parts(
    web: DICOMwebClient, client: httpx.Client
) -> None:
    study = _study()
    response = web.store_instances(study)
    referenced = response.ReferencedSOPSequence
    assert {item.ReferencedSOPInstanceUID for item in referenced} == {
        ds.SOPInstanceUID for ds in study
    }
    assert "FailedSOPSequence" not in response
    assert response.RetrieveURL.endswith(f"/dicomweb/studies/{study[0].StudyInstanceUID}")
    stored = {ds.SOPInstanceUID: _bytes(ds) for ds in study}

    uid = study[0].StudyInstanceUID
    whole = web.retrieve_study(uid)
    assert {ds.SOPInstanceUID for ds in whole} == set(stored)
    series = study[0].SeriesInstanceUID
    assert {ds.SOPInstanceUID for ds in web.retrieve_series(uid, series)} == {
        ds.SOPInstanceUID for ds in study if ds.SeriesInstanceUID == series
    }
    one = web.retrieve_instance(uid, series, study[0].SOPInstanceUID)
    assert one.PatientName == study[0].PatientName

    # Every byte as stored: the file API and DICOMweb see one archive.
    r = client.get("/dicom-image", params={"study_instance_uid": uid, "limit": 10}).json()["items"]
    assert len(r) == 4
    for item in r:
        assert (
            client.get(f"/dicom-image/{item['file_id']}").content
            == stored[item["sop_instance_uid"]]
        )

    metadata = web.retrieve_study_metadata(uid)
    assert len(metadata) == 4
    assert {m["00080018"]["Value"][0] for m in metadata} == set(stored)
    assert len(web.retrieve_series_metadata(uid, series)) == 2
    instance_md = web.retrieve_instance_metadata(uid, series, study[0].SOPInstanceUID)
    assert instance_md["00100010"]["Value"][0]["Alphabetic"] == str(study[0].PatientName)


def test_an_instance_stored_by_the_file_api_is_retrieved_by_dicomweb(
    web: DICOMwebClient, client: httpx.Client
) -> None:
    data = copy_with_new_uid(data_file("MR_small.dcm"))
    body = client.post(
        "/dicom-image", content=data, headers={"content-type": "application/dicom"}
    ).json()
    got = web.retrieve_instance(
        body["study_instance_uid"], body["series_instance_uid"], body["sop_instance_uid"]
    )
    assert got.SOPInstanceUID == body["sop_instance_uid"]
    url = (
        f"/dicomweb/studies/{body['study_instance_uid']}/series/"
        f"{body['series_instance_uid']}/instances/{body['sop_instance_uid']}"
    )
    raw = client.get(url, headers={"accept": 'multipart/related; type="application/dicom"'})
    assert _parts(raw) == [data]  # the stored bytes, unchanged


def test_instances_are_transcoded_to_explicit_little_endian_unless_asked_as_stored(
    web: DICOMwebClient, client: httpx.Client
) -> None:
    """PS3.18's default for application/dicom is Explicit VR Little Endian: compressed,
    implicit and big-endian instances are transcoded, with the same pixels; ``*`` is as
    stored, and a syntax the service cannot make is refused."""
    study = generate_uid()
    originals = {}
    for name in ("MR2_J2KR.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm"):
        ds = pydicom.dcmread(io.BytesIO(copy_with_new_uid(data_file(name))))
        ds.StudyInstanceUID = study
        originals[ds.SOPInstanceUID] = ds
    web.store_instances(list(originals.values()))
    for got in web.retrieve_study(study):  # dicomweb-client names no transfer syntax
        assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        original = originals[got.SOPInstanceUID]
        assert (got.pixel_array == original.pixel_array).all()
        assert got.PatientName == original.PatientName
    as_stored = web.retrieve_study(study, media_types=(("application/dicom", "*"),))
    assert {str(ds.file_meta.TransferSyntaxUID) for ds in as_stored} == {
        str(ds.file_meta.TransferSyntaxUID) for ds in originals.values()
    }
    for got in web.retrieve_study(study, media_types=(("application/dicom", JPEG_LOSSLESS),)):
        assert got.file_meta.TransferSyntaxUID == JPEG_LOSSLESS  # written by GDCM
        assert (got.pixel_array == originals[got.SOPInstanceUID].pixel_array).all()
    mpeg2 = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.100'
    assert_problem(
        client.get(f"/dicomweb/studies/{study}", headers={"accept": mpeg2}),
        406,
        "not_acceptable",
    )  # no encoder writes MPEG-2


JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"


def _multipart(parts: list[tuple[str, bytes]], boundary: str) -> bytes:
    out = b""
    for content_type, data in parts:
        out += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _post(client: httpx.Client, path: str, body: bytes, boundary: str) -> httpx.Response:
    return client.post(
        path,
        content=body,
        headers={
            "content-type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "accept": "application/dicom+json",
        },
    )


def _stow_one(client: httpx.Client, ds: Dataset) -> httpx.Response:
    boundary = uuid.uuid4().hex
    body = _multipart([("application/dicom", _bytes(ds))], boundary)
    return _post(client, "/dicomweb/studies", body, boundary)


def _parts(response: httpx.Response) -> list[bytes]:
    """The bodies of a multipart/related response, split by hand (no client's parsing)."""
    boundary = response.headers["content-type"].split("boundary=", 1)[1].strip('"')
    chunks = response.content.split(f"--{boundary}".encode())[1:-1]
    return [c.split(b"\r\n\r\n", 1)[1][: -len(b"\r\n")] for c in chunks]


def test_bad_parts_fail_alone_and_good_parts_are_stored(client: httpx.Client) -> None:
    good = _study(1, 1)[0]
    other_study = _study(1, 1)[0]
    boundary = uuid.uuid4().hex
    body = _multipart(
        [
            ("application/dicom", _bytes(good)),
            ("application/dicom", b"this part is not DICOM" * 20),
            ("application/dicom", _bytes(other_study)),  # outside the study of the URL
            ("text/plain", b"hello"),
        ],
        boundary,
    )
    r = _post(client, f"/dicomweb/studies/{good.StudyInstanceUID}", body, boundary)
    assert r.status_code == 202, r.text
    assert r.headers["content-type"].startswith("application/dicom+json")
    answer = r.json()
    stored = answer["00081199"]["Value"]
    assert [s["00081155"]["Value"][0] for s in stored] == [good.SOPInstanceUID]
    failed = answer["00081198"]["Value"]
    reasons = [f["00081197"]["Value"][0] for f in failed]
    assert reasons == [0xC000, 0x0110, 0xC000]  # not DICOM, outside the study, not DICOM
    assert failed[1]["00081155"]["Value"] == [other_study.SOPInstanceUID]  # named when known
    assert failed[1]["00081150"]["Value"] == [other_study.SOPClassUID]
    assert "Value" not in failed[0]["00081155"]  # unknown for bytes that are not DICOM
    # The instance outside the study was not stored.
    listed = client.get(
        "/dicom-image", params={"study_instance_uid": other_study.StudyInstanceUID}
    ).json()["items"]
    assert listed == []


def test_a_duplicate_with_other_content_fails_with_0111_and_all_failed_is_409(
    client: httpx.Client,
) -> None:
    ds = _study(1, 1)[0]
    assert _stow_one(client, ds).status_code == 200
    assert _stow_one(client, ds).status_code == 200  # identical again: stored, once
    ds.PatientID = "ANOTHER"
    r = _stow_one(client, ds)
    assert r.status_code == 409
    item = r.json()["00081198"]["Value"][0]
    assert item["00081197"]["Value"] == [0x0111]
    assert item["00081155"]["Value"] == [ds.SOPInstanceUID]


def test_instances_of_no_storage_class_fail_with_their_standard_reasons(
    client: httpx.Client,
) -> None:
    """0xA900 for a data set whose SOP class contradicts its file meta, 0x0122 for a class
    that is not for storage, 0xC122 for a transfer syntax UID that names something else;
    the file API refuses the same files with the same problem codes."""
    mismatch, verification, bad_syntax = (_study(1, 1)[0] for _ in range(3))
    mismatch.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR, not CT
    verification.SOPClassUID = verification.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.1"
    data = {ds.SOPInstanceUID: _bytes(ds) for ds in (mismatch, verification, bad_syntax)}
    explicit = b"1.2.840.10008.1.2.1\x00"
    assert explicit in data[bad_syntax.SOPInstanceUID]
    data[bad_syntax.SOPInstanceUID] = data[bad_syntax.SOPInstanceUID].replace(
        explicit,
        b"1.2.840.10008.1.3.10",
        1,  # the DICOMDIR's SOP class: not a syntax
    )
    boundary = uuid.uuid4().hex
    parts = [("application/dicom", body) for body in data.values()]
    r = _post(client, "/dicomweb/studies", _multipart(parts, boundary), boundary)
    assert r.status_code == 409, r.text
    failed = r.json()["00081198"]["Value"]
    assert [f["00081197"]["Value"][0] for f in failed] == [0xA900, 0x0122, 0xC122]
    assert [f["00081155"]["Value"][0] for f in failed] == [
        ds.SOPInstanceUID for ds in (mismatch, verification, bad_syntax)
    ]
    for ds, status, code in [
        (mismatch, 422, "sop_class_mismatch"),
        (verification, 422, "sop_class_not_supported"),
        (bad_syntax, 415, "transfer_syntax_not_supported"),
    ]:
        upload = client.post(
            "/dicom-image",
            content=data[ds.SOPInstanceUID],
            headers={"content-type": "application/dicom"},
        )
        assert_problem(upload, status, code)


def test_an_instance_stored_with_a_warning_and_failures_explained_in_warning_headers(
    client: httpx.Client,
) -> None:
    """A file meta naming another SOP Instance UID than its data set: stored under the data
    set's, with WarningReason 0xB007 and status 202; every failure and warning is also said
    in words in a ``Warning: 299`` header, as dcm4chee does."""
    odd = _study(1, 1)[0]
    odd.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    boundary = uuid.uuid4().hex
    body = _multipart(
        [("application/dicom", _bytes(odd)), ("application/dicom", b"not DICOM" * 50)],
        boundary,
    )
    r = _post(client, "/dicomweb/studies", body, boundary)
    assert r.status_code == 202, r.text
    (stored,) = r.json()["00081199"]["Value"]
    assert stored["00081155"]["Value"] == [odd.SOPInstanceUID]
    assert stored["00081196"]["Value"] == [0xB007]
    warnings = r.headers.get_list("warning")
    assert len(warnings) == 2
    assert all(w.startswith("299 dicom-file-service: ") for w in warnings)
    assert "not a DICOM file" in warnings[0]
    assert "Media Storage SOP Instance UID" in warnings[1]


def test_requests_that_are_not_stow_are_refused(client: httpx.Client) -> None:
    r = client.post(
        "/dicomweb/studies", content=b"x", headers={"content-type": "application/dicom"}
    )
    assert_problem(r, 415, "unsupported_media_type")
    r = client.post(
        "/dicomweb/studies", content=b"x", headers={"content-type": "multipart/related"}
    )
    assert_problem(r, 400, "malformed_body")
    boundary = uuid.uuid4().hex
    truncated = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\nDICM".encode()
    r = _post(client, "/dicomweb/studies", truncated, boundary)
    assert r.status_code == 400


def test_retrieve_answers_404_and_406_as_problems(client: httpx.Client) -> None:
    assert_problem(client.get("/dicomweb/studies/1.2.3.999"), 404, "file_not_found")
    assert_problem(client.get("/dicomweb/studies/1.2.3.999/metadata"), 404, "file_not_found")
    ds = _study(1, 1)[0]
    _stow_one(client, ds)
    mpeg2 = "1.2.840.10008.1.2.4.100"  # a syntax the service cannot write
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={mpeg2}'
    r = client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}", headers={"accept": accept})
    assert_problem(r, 406, "not_acceptable")


def test_delete_at_instance_series_and_study_level(
    web: DICOMwebClient, client: httpx.Client
) -> None:
    study = _study(2, 2)
    web.store_instances(study)
    uid = study[0].StudyInstanceUID
    first, second = study[0].SeriesInstanceUID, study[2].SeriesInstanceUID
    sop = study[0].SOPInstanceUID
    instance = f"/dicomweb/studies/{uid}/series/{first}/instances/{sop}"
    assert client.delete(instance).status_code == 204
    assert len(web.retrieve_series_metadata(uid, first)) == 1
    assert client.delete(f"/dicomweb/studies/{uid}/series/{second}").status_code == 204
    gone = client.get(f"/dicomweb/studies/{uid}/series/{second}/metadata")
    assert_problem(gone, 404, "file_not_found")
    assert client.delete(f"/dicomweb/studies/{uid}").status_code == 204
    assert_problem(client.get(f"/dicomweb/studies/{uid}"), 404, "file_not_found")
    assert_problem(client.delete(f"/dicomweb/studies/{uid}"), 404, "file_not_found")
    listed = client.get("/dicom-image", params={"study_instance_uid": uid}).json()["items"]
    assert listed == []


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("cors") / "data",
        {"DICOM_FS_CORS_ORIGINS": '["https://viewer.example.org"]'},
    )
    yield srv
    stop_server(srv)


def test_a_viewer_on_another_origin_may_call_every_route(cors_server: Server) -> None:
    origin = {"origin": "https://viewer.example.org"}
    with cors_server.client() as c:
        data = copy_with_new_uid(data_file("CT_small.dcm"))
        file_id = c.post(
            "/dicom-image", content=data, headers={"content-type": "application/dicom"}
        ).json()["file_id"]
        for path in (
            f"/dicom-image/{file_id}?dicom_tag=PatientName",  # the fast path
            f"/dicom-image/{file_id}/png",  # the fast path
            f"/dicom-image/{file_id}/metadata",
            "/dicomweb/studies/1.2.3.999/metadata",  # an error answer too
        ):
            r = c.get(path, headers=origin)
            assert r.headers["access-control-allow-origin"] == "https://viewer.example.org"
        preflight = c.options(
            "/dicomweb/studies",
            headers={**origin, "access-control-request-method": "POST"},
        )
        assert preflight.status_code == 200
        other = c.get(f"/dicom-image/{file_id}/metadata", headers={"origin": "https://evil.test"})
        assert "access-control-allow-origin" not in other.headers


def test_the_stow_response_in_xml_when_asked(client: httpx.Client) -> None:
    import xml.etree.ElementTree as ET

    ds = _study(1, 1)[0]
    boundary = uuid.uuid4().hex
    body = _multipart([("application/dicom", _bytes(ds)), ("application/dicom", b"junk")], boundary)
    r = client.post(
        "/dicomweb/studies",
        content=body,
        headers={
            "content-type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "accept": "application/dicom+xml",
        },
    )
    assert r.status_code == 202
    assert r.headers["content-type"].startswith("application/dicom+xml")
    ns = {"d": "http://dicom.nema.org/PS3.19/models/NativeDICOM"}
    root = ET.fromstring(r.content)
    stored = root.findall(
        "d:DicomAttribute[@keyword='ReferencedSOPSequence']/d:Item/"
        "d:DicomAttribute[@keyword='ReferencedSOPInstanceUID']/d:Value",
        ns,
    )
    assert [v.text for v in stored] == [ds.SOPInstanceUID]
    reasons = root.findall(".//d:DicomAttribute[@keyword='FailureReason']/d:Value", ns)
    assert [v.text for v in reasons] == [str(0xC000)]


def test_answers_name_what_they_stand_for_in_content_location(
    client: httpx.Client, server: Server
) -> None:
    ds = _study(1, 1)[0]
    assert _stow_one(client, ds).status_code == 200
    instance = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    metadata = client.get(f"{instance}/metadata")
    assert metadata.headers["content-location"] == f"{server.base_url}{instance}/metadata"
    search = client.get("/dicomweb/studies", params={"StudyInstanceUID": ds.StudyInstanceUID})
    assert search.headers["content-location"] == (
        f"{server.base_url}/dicomweb/studies?StudyInstanceUID={ds.StudyInstanceUID}"
    )
    retrieved = client.get(
        f"/dicomweb/studies/{ds.StudyInstanceUID}",
        headers={"accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert f"Content-Location: {server.base_url}{instance}\r\n".encode() in retrieved.content
    assert "content-location" not in client.get("/dicomweb/studies/1.2.3").headers  # a 404


def test_metadata_is_answered_from_the_index_without_reading_a_blob(
    web: DICOMwebClient, client: httpx.Client, server: Server
) -> None:
    """Metadata of a whole series with every blob gone from the store: still complete, as
    nothing but the index is read."""
    from dicom_file_service.service.ids import instance_key
    from dicom_file_service.storage import open_blob_store

    study = _study(1, 3)
    web.store_instances(study)
    uid, series = study[0].StudyInstanceUID, study[0].SeriesInstanceUID
    before = web.retrieve_series_metadata(uid, series)
    items = client.get("/dicom-image", params={"series_instance_uid": series}).json()["items"]
    store = open_blob_store(server.settings())
    for item in items:
        store.delete(instance_key(item["file_id"]))
    assert web.retrieve_series_metadata(uid, series) == before
    assert len(before) == 3
