"""De-identified copies over HTTP, on every backend: a study of two series whose instances
refer to each other is copied as a new study by a job; no byte of the copy holds a planted
marker, its references still meet, the instance with burned-in text is left out and named, the
source is untouched, a second identical request stores nothing new, and bad requests are
problems naming what is wrong."""

from __future__ import annotations

import io
import time
import zipfile
from typing import Any

import httpx
import pydicom
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from tests.api.test_upload import assert_problem
from tests.datafiles import data_file

MARKERS = ("MRKFAMILY", "MRKGIVEN", "MRKPID77", "MRKACC55", "MRKREFERRER", "MRKINSTITUTION")
MARKERS += ("MRKSTATION", "MRKSERIAL", "MRKNESTED", "MRKPRIVATE", "MRKCOMMENT")
BAD = "malformed_body"


def _instance(
    study: str, series: str, frame_of_reference: str, referenced_series: str | None = None
) -> Dataset:
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PatientName, ds.PatientID = "MRKFAMILY^MRKGIVEN", "MRKPID77"
    ds.AccessionNumber, ds.ReferringPhysicianName = "MRKACC55", "MRKREFERRER^DOC"
    ds.InstitutionName, ds.StationName = "MRKINSTITUTION", "MRKSTATION"
    ds.DeviceSerialNumber, ds.ImageComments = "MRKSERIAL", "seen by MRKFAMILY: MRKCOMMENT"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240131"
    step = Dataset()
    step.ScheduledProcedureStepDescription = "for MRKNESTED"
    ds.RequestAttributesSequence = Sequence([step])
    ds.private_block(0x0009, "MRKCREATOR", create=True).add_new(0x01, "LO", "MRKPRIVATE")
    if referenced_series is not None:
        ref = Dataset()
        ref.SeriesInstanceUID = referenced_series
        ds.ReferencedSeriesSequence = Sequence([ref])
    return ds


def _bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _store(client: httpx.Client, ds: Dataset) -> bytes:
    data = _bytes(ds)
    answer = client.post("/dicom-image", files={"file": ("x.dcm", data)})
    assert answer.status_code == 201, answer.text
    return data


def _a_marked_study(client: httpx.Client) -> tuple[str, dict[str, bytes], str]:
    """(study UID, stored bytes by SOP Instance UID, the burned-in instance's UID)."""
    study, first, second, frame = (generate_uid() for _ in range(4))
    instances = [
        _instance(study, first, frame),
        _instance(study, first, frame),
        _instance(study, second, frame, referenced_series=first),
    ]
    burned = _instance(study, second, frame)
    burned.BurnedInAnnotation = "YES"
    stored = {str(ds.SOPInstanceUID): _store(client, ds) for ds in [*instances, burned]}
    return study, stored, str(burned.SOPInstanceUID)


def _finished(client: httpx.Client, started: httpx.Response) -> dict[str, Any]:
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    assert location == f"/jobs/{started.json()['job']}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(location).json()
        if job["state"] in ("succeeded", "failed"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"the job did not finish: {job}")


def _study_files(client: httpx.Client, study: str) -> dict[str, bytes]:
    answer = client.get(f"/dicomweb/studies/{study}", headers={"accept": "application/zip"})
    assert answer.status_code == 200, answer.text
    with zipfile.ZipFile(io.BytesIO(answer.content)) as z:
        return {name: z.read(name) for name in z.namelist() if name.endswith(".dcm")}


def test_a_study_is_copied_without_identity_and_its_references_kept(
    client: httpx.Client,
) -> None:
    study, stored, burned = _a_marked_study(client)
    body = {"options": ["retain_longitudinal_modified_dates"]}
    job = _finished(client, client.post(f"/dicomweb/studies/{study}/deidentify", json=body))
    assert job["state"] == "succeeded", job
    assert job["done"] == job["total"] == 4
    result = job["result"]
    new_study = result["study"]
    assert new_study.startswith("2.25.") and new_study != study
    assert result["stored"] == 3 and result["refused"] == []
    assert [e["sop_instance_uid"] for e in result["excluded"]] == [burned]
    assert "Burned In Annotation" in result["excluded"][0]["reason"]

    found = client.get("/dicomweb/studies", params={"StudyInstanceUID": new_study}).json()
    assert len(found) == 1 and found[0]["00201208"]["Value"] == [3]
    copies = _study_files(client, new_study)
    assert len(copies) == 3
    data_sets = [pydicom.dcmread(io.BytesIO(data)) for data in copies.values()]
    for data in copies.values():
        for marker in MARKERS:
            assert marker.encode() not in data, marker
        assert all(uid.encode() not in data for uid in stored)  # no source UID at all
    series = {str(ds.SeriesInstanceUID) for ds in data_sets}
    assert len(series) == 2
    referring = [ds for ds in data_sets if "ReferencedSeriesSequence" in ds]
    assert len(referring) == 1  # its reference names the copy's other series
    named = referring[0].ReferencedSeriesSequence[0].SeriesInstanceUID
    assert named in series and named != referring[0].SeriesInstanceUID
    assert len({str(ds.FrameOfReferenceUID) for ds in data_sets}) == 1
    for ds in data_sets:
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.StudyInstanceUID == new_study
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
        assert ds.StudyDate != "20240131" and len(ds.StudyDate) == 8
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID

    # the source is untouched
    assert sorted(_study_files(client, study).values()) == sorted(stored.values())

    # the same request again: the same copy, nothing stored twice
    again = _finished(client, client.post(f"/dicomweb/studies/{study}/deidentify", json=body))
    assert again["state"] == "succeeded", again
    assert again["result"]["study"] == new_study
    assert again["result"]["stored"] == 0 and again["result"]["already_stored"] == 3
    assert _study_files(client, new_study) == copies


def test_a_series_and_an_instance_with_an_empty_body_or_given_values(
    client: httpx.Client,
) -> None:
    study, stored, burned = _a_marked_study(client)
    series = client.get(f"/dicomweb/studies/{study}/series").json()
    first = next(s["0020000E"]["Value"][0] for s in series if s["00201209"]["Value"] == [2])
    job = _finished(client, client.post(f"/dicomweb/studies/{study}/series/{first}/deidentify"))
    assert job["state"] == "succeeded", job
    assert job["result"]["stored"] == 2 and job["result"]["excluded"] == []

    uid = next(u for u in stored if u != burned)
    found = client.get(f"/dicomweb/studies/{study}/instances", params={"SOPInstanceUID": uid})
    its_series = found.json()[0]["0020000E"]["Value"][0]
    body = {"replace": {"PatientName": "SUBJECT^ONE", "PatientID": "SUBJ-001"}}
    path = f"/dicomweb/studies/{study}/series/{its_series}/instances/{uid}/deidentify"
    job = _finished(client, client.post(path, json=body))
    assert job["state"] == "succeeded", job
    found = client.get("/dicomweb/instances", params={"PatientID": "SUBJ-001"}).json()
    assert [m["00100010"]["Value"][0]["Alphabetic"] for m in found] == ["SUBJECT^ONE"]
    assert found[0]["0020000D"]["Value"] == [job["result"]["study"]]


def test_bad_requests_are_problems_naming_what_is_wrong(client: httpx.Client) -> None:
    study, _, _ = _a_marked_study(client)
    path = f"/dicomweb/studies/{study}/deidentify"

    def refused(status: int, code: str, **request: Any) -> str:
        return str(assert_problem(client.post(path, **request), status, code)["detail"])

    assert "keep_everything" in refused(400, BAD, json={"options": ["keep_everything"]})
    assert "retain_uids" in refused(422, "option_refused", json={"options": ["retain_uids"]})
    assert "colour" in refused(400, BAD, json={"colour": "red"})
    assert "PatientSex" in refused(400, BAD, json={"replace": {"PatientSex": "F"}})
    assert "PatientID" in refused(400, BAD, json={"replace": {"PatientID": "a\\b"}})
    assert "pixel_regions" in refused(400, BAD, json={"options": ["clean_pixel_data"]})
    assert "clean_pixel_data" in refused(400, BAD, json={"pixel_regions": [[0, 0, 1, 1]]})
    cleaning = {"options": ["clean_pixel_data"], "pixel_regions": [[5, 0, 2, 9]]}
    assert "x0 < x1" in refused(400, BAD, json=cleaning)
    refused(400, BAD, content=b"{not json")
    refused(400, BAD, json=["retain_uids"])
    unknown = f"/dicomweb/studies/{generate_uid()}/deidentify"
    assert_problem(client.post(unknown, json={}), 404, "resource_not_found")


def test_clean_pixel_data_blanks_the_regions_and_keeps_burned_in_instances(
    client: httpx.Client,
) -> None:
    study, _, _ = _a_marked_study(client)
    body = {"options": ["clean_pixel_data"], "pixel_regions": [[0, 0, 16, 8]]}
    job = _finished(client, client.post(f"/dicomweb/studies/{study}/deidentify", json=body))
    assert job["state"] == "succeeded", job
    assert job["result"]["stored"] == 4 and job["result"]["excluded"] == []
    copies = [pydicom.dcmread(io.BytesIO(d)) for d in _study_files(client, job["result"]["study"])
              .values()]  # fmt: skip
    assert len(copies) == 4
    for ds in copies:
        assert ds.BurnedInAnnotation == "NO"
        assert (ds.pixel_array[:8, :16] == -32768).all()  # CT_small: signed 16 bits stored
        codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
        assert "113101" in codes  # Clean Pixel Data Option


def test_an_instance_kept_without_file_meta_is_copied(client: httpx.Client) -> None:
    """A data set stored as sent, without preamble or file meta (implicit VR little endian)."""
    study, series = generate_uid(), generate_uid()
    ds = _instance(study, series, generate_uid())
    bare = DicomBytesIO()
    bare.is_little_endian, bare.is_implicit_VR = True, True
    write_dataset(bare, ds)
    data = bare.getvalue()
    answer = client.post("/dicom-image", files={"file": ("bare.dcm", data)})
    assert answer.status_code == 201, answer.text
    job = _finished(client, client.post(f"/dicomweb/studies/{study}/deidentify"))
    assert job["state"] == "succeeded", job
    assert job["result"]["stored"] == 1
    (copy,) = _study_files(client, job["result"]["study"]).values()
    assert copy[128:132] == b"DICM" and b"MRKFAMILY" not in copy
