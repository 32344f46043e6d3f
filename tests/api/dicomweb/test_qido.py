"""QIDO-RS through dicomweb-client, on every backend: each matching kind of PS3.18 10.6.1.2,
paging, includefield, the computed attributes, warnings, and character sets.

The server is shared by the session, so every query here is narrowed to this test's own
patient or study: what other tests stored never changes an answer.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_charset_files
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import assert_problem
from tests.conftest import Server
from tests.datafiles import data_file


@pytest.fixture
def web(server: Server) -> DICOMwebClient:
    return DICOMwebClient(f"{server.base_url}/dicomweb")


def _instance(study: str, series: str, **attributes: Any) -> Dataset:
    ds = pydicom.dcmread(io.BytesIO(copy_with_new_uid(data_file("CT_small.dcm"))))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def _request(step_id: str, procedure_id: str) -> Sequence:
    item = Dataset()
    item.ScheduledProcedureStepID = step_id
    item.RequestedProcedureID = procedure_id
    return Sequence([item])


@pytest.fixture
def study(web: DICOMwebClient) -> dict[str, Any]:
    """A two-series study (CT of three instances, MR of one) with every matching key set."""
    patient = f"QIDO-{uuid.uuid4().hex[:8]}"
    uid, ct, mr = generate_uid(), generate_uid(), generate_uid()
    common = {
        "SpecificCharacterSet": "ISO_IR 192",
        "PatientName": "Müller^Jürgen",
        "PatientID": patient,
        "StudyDate": "20240115",
        "StudyTime": "103000",
        "AccessionNumber": f"ACC{patient[-6:]}",
        "ReferringPhysicianName": "Welby^Marcus",
        "StudyID": "S42",
        "StudyDescription": "Chest and abdomen",
    }
    datasets = [
        _instance(
            uid,
            ct,
            Modality="CT",
            SeriesNumber=3,
            SeriesDescription="Axial chest",
            InstanceNumber=n,
            PerformedProcedureStepStartDate="20240115",
            RequestAttributesSequence=_request("SPS-7", "RP-9"),
            **common,
        )
        for n in (1, 2, 3)
    ]
    datasets.append(_instance(uid, mr, Modality="MR", SeriesNumber=4, InstanceNumber=1, **common))
    web.store_instances(datasets)
    return {"uid": uid, "ct": ct, "mr": mr, "patient": patient, "datasets": datasets}


def _uids(found: list[dict[str, Any]], tag: str = "0020000D") -> set[str]:
    return {item[tag]["Value"][0] for item in found}


def test_every_study_matching_kind_finds_the_study(
    web: DICOMwebClient, study: dict[str, Any]
) -> None:
    uid, patient = study["uid"], study["patient"]

    def found(fuzzy: bool = False, **filters: Any) -> bool:
        filters = {"PatientID": patient, **filters}
        hits = web.search_for_studies(search_filters=filters, fuzzymatching=fuzzy)
        assert _uids(hits) <= {uid}
        return bool(hits)

    assert found()  # single value
    assert found(StudyInstanceUID=uid)
    assert found(StudyInstanceUID=f"1.2.3.4,{uid}")  # UID list
    assert found(StudyInstanceUID=f"1.2.3.4\\{uid}")
    assert not found(StudyInstanceUID="1.2.3.4")
    # Person names: case-insensitive, wildcards, accents only under fuzzymatching.
    assert found(PatientName="müller^jürgen")
    assert found(PatientName="MÜL*")
    assert found(PatientName="?üller^*")
    assert not found(PatientName="Müller")  # a single value is not a prefix
    assert not found(PatientName="MULLER*")
    assert found(fuzzy=True, PatientName="muller^jurgen")
    assert found(fuzzy=True, PatientName="MULL*")
    assert found(ReferringPhysicianName="*welby*")
    # Dates and times: single, ranges open at either end, and date-time combined.
    assert found(StudyDate="20240115")
    assert found(StudyDate="20240101-20240131")
    assert found(StudyDate="20240115-")
    assert found(StudyDate="-20240115")
    assert not found(StudyDate="20240116-")
    assert not found(StudyDate="20230101-20231231")
    assert found(StudyTime="1030")
    assert found(StudyTime="100000-110000")
    assert not found(StudyTime="110000-")
    assert found(StudyDate="20240114-20240115", StudyTime="2300-1100")  # 14th 23:00 → 15th 11:00
    assert not found(StudyDate="20240115", StudyTime="1100-1200")
    # Texts are case-sensitive single values or wildcards.
    assert found(AccessionNumber=f"ACC{patient[-6:]}")
    assert found(StudyID="S4?")
    assert not found(StudyID="s42")
    assert found(StudyDescription="Chest*")
    assert found(ModalitiesInStudy="MR")
    assert found(ModalitiesInStudy="CT,MR")
    assert not found(ModalitiesInStudy="US")
    assert found(PatientName="")  # empty: universal matching


def test_a_study_answer_holds_its_attributes_and_the_computed_counts(
    web: DICOMwebClient, study: dict[str, Any]
) -> None:
    (hit,) = web.search_for_studies(search_filters={"PatientID": study["patient"]})
    answer = Dataset.from_json(hit)
    assert answer.StudyInstanceUID == study["uid"]
    assert str(answer.PatientName) == "Müller^Jürgen"
    assert answer.StudyDate == "20240115"
    assert answer.StudyDescription == "Chest and abdomen"
    assert answer.NumberOfStudyRelatedSeries == 2
    assert answer.NumberOfStudyRelatedInstances == 4
    assert list(answer.ModalitiesInStudy) == ["CT", "MR"]
    assert answer.InstanceAvailability == "ONLINE"
    assert answer.RetrieveURL.endswith(f"/dicomweb/studies/{study['uid']}")
    assert "PatientBirthDate" in answer  # returned though empty (zero length)

    (extra,) = web.search_for_studies(
        search_filters={"PatientID": study["patient"]}, fields=["PatientAge", "00080070"]
    )
    assert {"00101010", "00080070"} <= set(extra)
    (everything,) = web.search_for_studies(
        search_filters={"PatientID": study["patient"]}, fields=["all"]
    )
    assert "00101010" in everything  # Patient Age: in the Patient Study module


def test_series_are_found_by_their_keys_within_a_study_or_across_studies(
    web: DICOMwebClient, study: dict[str, Any]
) -> None:
    uid = study["uid"]

    def series(**filters: Any) -> set[str]:
        return _uids(web.search_for_series(uid, search_filters=filters), "0020000E")

    assert series() == {study["ct"], study["mr"]}
    assert series(Modality="CT") == {study["ct"]}
    assert series(SeriesNumber=4) == {study["mr"]}
    assert series(SeriesDescription="Axial*") == {study["ct"]}
    assert series(SeriesInstanceUID=study["mr"]) == {study["mr"]}
    assert series(PerformedProcedureStepStartDate="20240101-20240131") == {study["ct"]}
    assert series(**{"RequestAttributesSequence.ScheduledProcedureStepID": "SPS-7"}) == {
        study["ct"]
    }
    assert series(**{"00400275.00401001": "RP-9"}) == {study["ct"]}
    assert series(**{"00400275.00401001": "RP-1"}) == set()

    everywhere = web.search_for_series(search_filters={"PatientID": study["patient"]})
    assert _uids(everywhere, "0020000E") == {study["ct"], study["mr"]}
    ct = Dataset.from_json(next(s for s in everywhere if s["00080060"]["Value"] == ["CT"]))
    assert ct.NumberOfSeriesRelatedInstances == 3
    assert ct.StudyInstanceUID == uid
    assert str(ct.PatientName) == "Müller^Jürgen"  # study attributes: no study in the path
    assert ct.RetrieveURL.endswith(f"/studies/{uid}/series/{study['ct']}")


def test_instances_are_found_at_every_url_form(web: DICOMwebClient, study: dict[str, Any]) -> None:
    uid, ct = study["uid"], study["ct"]
    sops = {ds.SOPInstanceUID for ds in study["datasets"]}
    assert _uids(web.search_for_instances(uid), "00080018") == sops
    in_ct = web.search_for_instances(uid, ct, search_filters={"InstanceNumber": 2})
    assert len(in_ct) == 1
    answer = Dataset.from_json(in_ct[0])
    assert answer.InstanceNumber == 2
    assert answer.Rows == 128 and answer.Columns == 128 and answer.BitsAllocated == 16
    assert answer.RetrieveURL.endswith(f"/series/{ct}/instances/{answer.SOPInstanceUID}")
    anywhere = web.search_for_instances(
        search_filters={"PatientID": study["patient"], "Modality": "MR"}
    )
    assert len(anywhere) == 1
    assert Dataset.from_json(anywhere[0]).SeriesInstanceUID == study["mr"]
    by_class = web.search_for_instances(
        uid, search_filters={"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2"}
    )
    assert _uids(by_class, "00080018") == sops
    (whole,) = web.search_for_instances(
        uid, ct, search_filters={"InstanceNumber": 1}, fields=["all"]
    )
    assert "00180050" in whole  # Slice Thickness: the whole header


def test_paging_with_limit_and_offset_is_complete_and_warns_of_more(
    web: DICOMwebClient, client: httpx.Client
) -> None:
    patient = f"PAGE-{uuid.uuid4().hex[:8]}"
    uids = [generate_uid() for _ in range(5)]
    web.store_instances([_instance(u, generate_uid(), PatientID=patient) for u in uids])
    pages = [
        web.search_for_studies(search_filters={"PatientID": patient}, limit=2, offset=offset)
        for offset in (0, 2, 4)
    ]
    assert [len(p) for p in pages] == [2, 2, 1]
    found = [u for page in pages for u in _uids(page)]
    assert sorted(found) == sorted(uids)  # every study once: the pages neither overlap nor skip

    r = client.get("/dicomweb/studies", params={"PatientID": patient, "limit": "2"})
    assert r.status_code == 200
    assert "offset=2" in r.headers["warning"]
    last = client.get("/dicomweb/studies", params={"PatientID": patient, "offset": "4"})
    assert "warning" not in last.headers


def test_keys_that_cannot_be_matched_and_bad_values_are_refused(
    client: httpx.Client, study: dict[str, Any]
) -> None:
    r = client.get("/dicomweb/studies", params={"PatientID": study["patient"]})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/dicom+json"
    assert len(r.json()) == 1
    assert "warning" not in r.headers

    for params, words in [
        ({"NoSuchKeyword": "x"}, "NoSuchKeyword"),  # never ignored: the answer would be all
        ({"SOPInstanceUID": "1.2"}, "SOPInstanceUID"),  # an instance key at study level
        ({"includefield": "NoSuchKeyword"}, "NoSuchKeyword"),
        ({"StudyDate": "2024-01-01"}, "not a date"),
        ({"StudyDate": "-"}, "range needs"),
        ({"StudyTime": "25x"}, "not a time"),
        ({"limit": "-1"}, "non-negative"),
        ({"fuzzymatching": "yes"}, "true or false"),
    ]:
        assert_problem(client.get("/dicomweb/studies", params=params), 400, "invalid_parameter")
        assert words in client.get("/dicomweb/studies", params=params).json()["detail"]
    r = client.get("/dicomweb/studies", headers={"accept": "application/dicom+xml"})
    assert_problem(r, 406, "not_acceptable")


def test_nothing_found_is_an_empty_list(client: httpx.Client) -> None:
    r = client.get("/dicomweb/studies", params={"PatientID": f"none-{uuid.uuid4().hex}"})
    assert r.status_code == 200
    assert r.json() == []


def test_a_deleted_study_is_no_longer_found(web: DICOMwebClient, study: dict[str, Any]) -> None:
    web.delete_series(study["uid"], study["mr"])
    (hit,) = web.search_for_studies(search_filters={"PatientID": study["patient"]})
    assert hit["00080061"]["Value"] == ["CT"]
    assert hit["00201206"]["Value"] == [1]
    assert web.search_for_series(search_filters={"SeriesInstanceUID": study["mr"]}) == []
    web.delete_study(study["uid"])
    assert web.search_for_studies(search_filters={"PatientID": study["patient"]}) == []
    assert web.search_for_series(study["uid"]) == []


def _charset_file(name: str) -> str:
    return next(f for f in get_charset_files() if f.endswith(name))


@pytest.mark.parametrize(
    ("name", "matches"),
    [
        ("chrFren.dcm", [("buc^jérôme", False), ("BUC^JEROME", True)]),
        ("chrX1.dcm", [("王^小東", False), ("wang^xiaodong", False)]),
        ("chrX2.dcm", [("王^小东", False), ("Wang*", False)]),
        ("chrH31.dcm", [("山田*", False), ("やまだ^たろう", False), ("yamada^tarou", False)]),
        ("chrH32.dcm", [("ﾔﾏﾀﾞ^ﾀﾛｳ", False), ("ヤマダ^タロウ", True), ("山田^太郎", False)]),
        ("chrI2.dcm", [("洪^吉洞", False), ("홍^길동", False)]),
    ],
)
def test_names_in_every_character_set_are_decoded_and_matched(
    web: DICOMwebClient, name: str, matches: list[tuple[str, bool]]
) -> None:
    """ISO_IR 100, ISO_IR 192, GB18030 and ISO 2022 IR 87/13/149: each component group of a
    name matches, in the characters the file wrote it in."""
    path = _charset_file(name)
    ds = pydicom.dcmread(io.BytesIO(copy_with_new_uid(Path(path))))
    ds.StudyInstanceUID = generate_uid()
    web.store_instances([ds])
    expected = pydicom.dcmread(path).PatientName
    for value, fuzzy in matches:
        hits = web.search_for_studies(
            search_filters={"StudyInstanceUID": ds.StudyInstanceUID, "PatientName": value},
            fuzzymatching=fuzzy,
        )
        assert len(hits) == 1, (name, value)
        answer = Dataset.from_json(hits[0])
        assert answer.PatientName == expected
