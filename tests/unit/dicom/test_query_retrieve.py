"""C-FIND identifiers as QIDO-RS queries and matches as C-FIND answers; C-MOVE/C-GET
identifiers as the UIDs to send (PS3.4 C.4)."""

from __future__ import annotations

import io
import warnings
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.dsutils import decode

from dicom_file_service.dicom.json_data_set import encode_attributes
from dicom_file_service.dicom.query_retrieve import (
    answer,
    find_query,
    patient_answers,
    retrieve_keys,
)
from dicom_file_service.errors import InvalidParameter


def _sent(attributes: dict[str, Any]) -> Dataset:
    """An answer as the requestor reads it: written as the listener sends it, then decoded."""
    written = encode_attributes(attributes, implicit_vr=False)
    return decode(io.BytesIO(written), False, True)


def _identifier(level: str, **keys: object) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_values_are_matching_keys_and_empty_ones_return_keys() -> None:
    query = find_query(
        _identifier(
            "STUDY",
            PatientName="DOE*",
            StudyDate="20240101-20240131",
            StudyInstanceUID="",
            ModalitiesInStudy=["CT", "MR"],
            NumberOfStudyRelatedInstances="",
        )
    )
    assert query.qido_level == "study"
    assert sorted(query.params) == [
        ("00080020", "20240101-20240131"),
        ("00080061", "CT\\MR"),
        ("00100010", "DOE*"),
        ("includefield", "0020000D"),
    ]  # the computed count is returned, never matched
    assert [int(e.tag) for e in query.returned] == [
        0x00080020,
        0x00080061,
        0x00100010,
        0x0020000D,
        0x00201208,
    ]


def test_a_uid_list_and_a_key_inside_a_sequence() -> None:
    item = Dataset()
    item.RequestedProcedureID = "RP7"
    query = find_query(
        _identifier(
            "SERIES",
            StudyInstanceUID=["1.2.3", "1.2.4"],
            RequestAttributesSequence=Sequence([item]),
        )
    )
    assert ("0020000D", "1.2.3\\1.2.4") in query.params
    assert ("00400275.00401001", "RP7") in query.params


def test_a_lower_level_key_with_a_value_is_refused_and_without_one_returned_empty() -> None:
    with pytest.raises(InvalidParameter, match="lower level"):
        find_query(_identifier("STUDY", SOPInstanceUID="1.2.3"))
    query = find_query(_identifier("STUDY", SOPInstanceUID="", StudyInstanceUID=""))
    found = _sent(answer(query, {"00080018": {"vr": "UI", "Value": ["9.9"]}}, ae_title="AE"))
    assert found.SOPInstanceUID in (None, "")  # not the first instance's, at study level


@pytest.mark.parametrize("level", ["", "FRAME", None])
def test_a_missing_or_unknown_level_is_refused(level: str | None) -> None:
    ds = Dataset()
    if level is not None:
        ds.QueryRetrieveLevel = level
    with pytest.raises(InvalidParameter, match="Query/Retrieve Level"):
        find_query(ds)


def test_an_answer_holds_the_identifiers_attributes_and_says_utf8_when_it_must() -> None:
    query = find_query(
        _identifier("STUDY", PatientName="", StudyInstanceUID="", RetrieveAETitle="")
    )
    match = {
        "00080005": {"vr": "CS", "Value": ["ISO_IR 100"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Müller^Hans"}]},
        "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
        "00081030": {"vr": "LO", "Value": ["not asked for"]},
    }
    found = _sent(answer(query, match, ae_title="DICOMFS"))
    assert str(found.PatientName) == "Müller^Hans"
    assert found.SpecificCharacterSet == "ISO_IR 192"
    assert found.RetrieveAETitle == "DICOMFS"
    assert found.QueryRetrieveLevel == "STUDY"
    assert "StudyDescription" not in found


def test_patient_level_answers_one_per_patient_with_its_counts() -> None:
    query = find_query(
        _identifier(
            "PATIENT",
            PatientID="",
            NumberOfPatientRelatedStudies="",
            NumberOfPatientRelatedInstances="",
        )
    )
    assert ("includefield", "00201208") in query.params

    def study(pid: str, series: int, instances: int) -> dict[str, object]:
        return {
            "00100020": {"vr": "LO", "Value": [pid]},
            "00201206": {"vr": "IS", "Value": [series]},
            "00201208": {"vr": "IS", "Value": [instances]},
        }

    answers = [
        _sent(a)
        for a in patient_answers(
            query, [study("A", 1, 3), study("B", 2, 5), study("A", 2, 4)], ae_title="X"
        )
    ]
    assert [(a.PatientID, a.NumberOfPatientRelatedStudies) for a in answers] == [
        ("A", 2),
        ("B", 1),
    ]
    assert answers[0].NumberOfPatientRelatedInstances == 7


def test_retrieve_keys_name_the_levels_unique_key() -> None:
    keys = retrieve_keys(
        _identifier("IMAGE", StudyInstanceUID="1.2", SeriesInstanceUID="1.2.3",
                    SOPInstanceUID=["1.2.3.4", "1.2.3.5", "1.2.3.4"])
    )  # fmt: skip
    assert (keys.level, keys.values, keys.study, keys.series) == (
        "IMAGE",
        ("1.2.3.4", "1.2.3.5"),
        "1.2",
        "1.2.3",
    )
    with pytest.raises(InvalidParameter, match="names no StudyInstanceUID"):
        retrieve_keys(_identifier("STUDY", StudyInstanceUID=""))
    with warnings.catch_warnings():  # pydicom warns of the invalid UI (once a process)
        warnings.simplefilter("ignore")
        pattern = _identifier("SERIES", SeriesInstanceUID="1.2.*")
    with pytest.raises(InvalidParameter, match="not patterns"):
        retrieve_keys(pattern)
    assert retrieve_keys(_identifier("PATIENT", PatientID="P1")).values == ("P1",)
