"""Precise C-STORE and C-FIND cases with pynetdicom as the SCU, on every backend: the exact
transfer syntax proposed is what is kept, the data set's bytes as sent (pynetdicom's chunked
send sends a file's bytes unchanged), and each outcome's status, counted in /metrics."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, _config
from pynetdicom.association import Association

from tests.conftest import Server
from tests.imperfect_files import pixel_representation_missing_multiframe
from tests.network.dimse_helpers import data_set_of, meta_of, register, wado_stored

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT, IMPLICIT, DEFLATED = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"


@pytest.fixture(autouse=True)
def _chunked_send() -> None:
    """Send files' bytes as they are (no decode and encode by pynetdicom)."""
    _config.STORE_SEND_CHUNKED_DATASET = True


def _associate(server: Server, contexts: list[tuple[str, list[str]]], ae_title: str) -> Association:
    ae = AE(ae_title=ae_title)
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, syntaxes)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title="DICOMFS")
    assert assoc.is_established
    return assoc


def _file(tmp_path: Path, name: str, ds: Dataset, *, as_given: bool = False) -> Path:
    """``ds`` as a Part 10 file; ``as_given``: its file meta as it is, not made to agree."""
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=not as_given)
    return path


def _fresh(source: str) -> Dataset:
    from tests.datafiles import data_file

    ds = pydicom.dcmread(data_file(source))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _stored(client: httpx.Client, ds: Dataset) -> bytes:
    return wado_stored(client, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


def test_the_syntax_proposed_is_kept_with_the_bytes_sent(
    server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    ds = _fresh("emri_small_jpeg_2k_lossless.dcm")
    path = _file(tmp_path, "j2k.dcm", ds)
    assoc = _associate(server, [(str(ds.SOPClassUID), [J2K_LOSSLESS])], "EXACT")
    try:
        assert assoc.send_c_store(path).Status == 0x0000
    finally:
        assoc.release()
    back = _stored(client, ds)
    assert data_set_of(back) == data_set_of(path.read_bytes())  # the very bytes sent
    meta = meta_of(back)
    assert meta.TransferSyntaxUID == J2K_LOSSLESS
    assert meta.SourceApplicationEntityTitle == "EXACT"
    assert meta.MediaStorageSOPClassUID == ds.SOPClassUID


def test_a_deflated_data_set_is_kept_inflated(
    server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    ds = _fresh("image_dfl.dcm")
    path = _file(tmp_path, "dfl.dcm", ds)
    assoc = _associate(server, [(str(ds.SOPClassUID), [DEFLATED])], "DEFLATE")
    try:
        assert assoc.send_c_store(path).Status == 0x0000
    finally:
        assoc.release()
    back = _stored(client, ds)
    assert meta_of(back).TransferSyntaxUID == EXPLICIT
    assert data_set_of(back) == data_set_of(path.read_bytes())  # inflated alike
    assert pydicom.dcmread(io.BytesIO(back)).PatientName == ds.PatientName


def test_each_outcome_has_its_status_and_the_association_goes_on(
    server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    first = _fresh("CT_small.dcm")
    conflicting = pydicom.dcmread(_file(tmp_path, "a.dcm", first))
    conflicting.PatientName = "Someone^Else"
    imperfect = pydicom.dcmread(io.BytesIO(pixel_representation_missing_multiframe()))
    mismatch = _fresh("CT_small.dcm")
    mismatch.file_meta.MediaStorageSOPInstanceUID = generate_uid()  # the Affected SOP Instance
    other_class = _fresh("CT_small.dcm")
    other_class.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR's
    files = {
        "first": _file(tmp_path, "first.dcm", first),
        "conflicting": _file(tmp_path, "conflicting.dcm", conflicting),
        "imperfect": _file(tmp_path, "imperfect.dcm", imperfect),
        "mismatch": _file(tmp_path, "mismatch.dcm", mismatch, as_given=True),
        "other_class": _file(tmp_path, "other_class.dcm", other_class, as_given=True),
    }
    classes = {str(pydicom.dcmread(p).SOPClassUID) for p in files.values()}
    classes.add("1.2.840.10008.5.1.4.1.1.4")
    assoc = _associate(server, [(c, [EXPLICIT]) for c in classes], "STATUSES")
    try:
        statuses = {
            "first": assoc.send_c_store(files["first"]).Status,
            "again": assoc.send_c_store(files["first"]).Status,
            "conflicting": assoc.send_c_store(files["conflicting"]).Status,
            "imperfect": assoc.send_c_store(files["imperfect"]).Status,
            "mismatch": assoc.send_c_store(files["mismatch"]).Status,
            "other_class": assoc.send_c_store(files["other_class"]).Status,
        }
        statuses["after"] = assoc.send_c_store(
            _file(tmp_path, "n.dcm", _fresh("CT_small.dcm"))
        ).Status
    finally:
        assoc.release()
    assert statuses == {
        "first": 0x0000,
        "again": 0x0000,  # an identical resend
        "conflicting": 0x0111,  # Duplicate SOP Instance, the stored one unchanged
        "imperfect": 0xB007,  # kept, its fault reported
        "mismatch": 0xC000,  # another instance than the request's: Cannot Understand
        "other_class": 0xA900,  # the data set's SOP class is not the request's
        "after": 0x0000,
    }
    assert data_set_of(_stored(client, first)) == data_set_of(files["first"].read_bytes())
    gone = client.get("/dicomweb/instances", params={"SOPInstanceUID": mismatch.SOPInstanceUID})
    assert gone.status_code == 204 or gone.json() == []
    metrics = client.get("/metrics").text
    for code in ("0000", "0111", "B007", "C000", "A900"):
        assert f'dicom_fs_dimse_operations_total{{operation="store",status="{code}"}}' in metrics


def test_an_element_running_past_the_data_set_is_refused(
    server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    ds = _fresh("CT_small.dcm")
    path = _file(tmp_path, "cut.dcm", ds)
    whole = path.read_bytes()
    cut = whole[: len(whole) - 1000]  # Pixel Data's length now runs past the end
    path.write_bytes(cut)
    assoc = _associate(server, [(CT, [EXPLICIT]), ("1.2.840.10008.1.1", [EXPLICIT])], "CUT")
    try:
        answer = assoc.send_c_store(path)
        assert answer.Status == 0xC000
        assert answer.ErrorComment  # what was wrong, in words
        assert assoc.send_c_echo().Status == 0x0000  # the association goes on
    finally:
        assoc.release()
    found = client.get("/dicomweb/instances", params={"SOPInstanceUID": ds.SOPInstanceUID})
    assert found.status_code == 204 or found.json() == []


def test_c_find_from_an_unregistered_ae_is_refused_and_a_registered_one_answered(
    server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    ds = _fresh("CT_small.dcm")
    ds.PatientID = "FIND-" + generate_uid()[-8:]
    path = _file(tmp_path, "f.dcm", ds)
    find = "1.2.840.10008.5.1.4.1.2.2.1"
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = ds.PatientID
    query.StudyInstanceUID = ""
    query.PatientName = ""
    stranger = _associate(server, [(CT, [EXPLICIT]), (find, [EXPLICIT])], "STRANGER")
    try:
        assert stranger.send_c_store(path).Status == 0x0000
        answers = list(stranger.send_c_find(query, find))
        assert [int(s.Status) for s, _ in answers] == [0x0124]
    finally:
        stranger.release()
    register(client, "pyfinder", "PYFINDER", allow=["find"])
    finder = _associate(server, [(find, [EXPLICIT])], "PYFINDER")
    try:
        answers = list(finder.send_c_find(query, find))
    finally:
        finder.release()
    assert [int(s.Status) for s, _ in answers] == [0xFF00, 0x0000]
    found = answers[0][1]
    assert found.StudyInstanceUID == ds.StudyInstanceUID
    assert found.PatientName == ds.PatientName
    assert found.QueryRetrieveLevel == "STUDY"


def test_c_cancel_stops_a_c_find_between_answers(server: Server, client: httpx.Client) -> None:
    """The answers are far larger than the sockets' buffers (150 × 58 kB, each in several PDUs
    of the requestor's 16 kB; below 64 kB, past which a text value is bulk data and not
    answered): the listener is still answering, held back by the requestor's reading, when
    the C-CANCEL sent after the first answer reaches it."""
    study, series = generate_uid(), generate_uid()
    text = "A long text value of a C-FIND answer. " * 1_500
    parts = []
    for n in range(150):  # instances without pixels, stored in one STOW-RS request
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CT, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID, ds.Modality, ds.InstanceNumber = "CANCEL", "CT", n + 1
        ds.TextValue = f"{n:03d} {text}"
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = EXPLICIT
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        parts.append(buffer.getvalue())
    boundary = "cancel-boundary"
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n"
            for p in parts
        )
        + f"--{boundary}--\r\n".encode()
    )
    stored = client.post(
        "/dicomweb/studies",
        content=body,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
        },
    )
    assert stored.status_code == 200, stored.text
    find = "1.2.840.10008.5.1.4.1.2.2.1"
    register(client, "canceller", "CANCELLER", allow=["find"])
    assoc = _associate(server, [(find, [EXPLICIT])], "CANCELLER")
    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID, query.SeriesInstanceUID = study, series
    query.SOPInstanceUID = ""
    query.TextValue = ""
    try:
        everything = list(assoc.send_c_find(query, find))
        answers = assoc.send_c_find(query, find, msg_id=9)
        cancelled = [int(next(answers)[0].Status)]
        assoc.send_c_cancel(9, assoc.accepted_contexts[0].context_id)  # as findscu --cancel
        cancelled += [int(status.Status) for status, _ in answers]
    finally:
        assoc.release()
    assert [int(status.Status) for status, _ in everything] == [0xFF00] * 150 + [0x0000]
    assert sorted(str(found.TextValue)[:3] for _, found in everything[:-1]) == [
        f"{n:03d}" for n in range(150)
    ]
    assert all(
        found.TextValue == f"{found.TextValue[:3]} {text}".rstrip() for _, found in everything[:-1]
    )
    assert cancelled[-1] == 0xFE00  # Matching terminated due to Cancel
    assert cancelled.count(0xFF00) < 150


def test_c_find_matches_and_answers_names_beyond_ascii(
    server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    ds = _fresh("CT_small.dcm")
    ds.SpecificCharacterSet = "ISO_IR 100"
    marker = generate_uid()[-6:]
    ds.PatientName = f"Müller{marker}^Hans"
    ds.PatientID = f"LATIN-{marker}"
    path = _file(tmp_path, "latin1.dcm", ds)
    find = "1.2.840.10008.5.1.4.1.2.2.1"
    register(client, "latin", "LATIN", allow=["find"])
    assoc = _associate(server, [(CT, [EXPLICIT]), (find, [EXPLICIT])], "LATIN")
    try:
        assert assoc.send_c_store(path).Status == 0x0000
        query = Dataset()
        query.SpecificCharacterSet = "ISO_IR 100"
        query.QueryRetrieveLevel = "STUDY"
        query.PatientName = f"müller{marker}*"  # names match case-insensitively
        query.PatientID = ""
        answers = list(assoc.send_c_find(query, find))
    finally:
        assoc.release()
    assert [int(s.Status) for s, _ in answers] == [0xFF00, 0x0000]
    found = answers[0][1]
    assert found.PatientID == ds.PatientID
    assert str(found.PatientName) == f"Müller{marker}^Hans"


def test_c_get_and_c_move_from_an_unregistered_ae_are_refused(
    server: Server, client: httpx.Client
) -> None:
    get, move = "1.2.840.10008.5.1.4.1.2.2.3", "1.2.840.10008.5.1.4.1.2.2.2"
    register(client, "itself", "DICOMFS", port=server.dicom_port, allow=[])  # a destination
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = generate_uid()
    assoc = _associate(server, [(get, [EXPLICIT]), (move, [EXPLICIT])], "UNKNOWN")
    try:
        got = [int(s.Status) for s, _ in assoc.send_c_get(query, get)]
        moved = [int(s.Status) for s, _ in assoc.send_c_move(query, "DICOMFS", move)]
        unknown = [int(s.Status) for s, _ in assoc.send_c_move(query, "NOWHERE", move)]
    finally:
        assoc.release()
    assert got[-1] == 0x0124
    assert moved[-1] == 0x0124
    assert unknown == [0xA801]
