"""QIDO-RS matching on stored headers (DICOM JSON): every kind, any attribute, any item."""

from __future__ import annotations

from typing import Any

import pytest

from dicom_file_service.dicom.qido import extra_query_keys, parse_query
from dicom_file_service.dicom.qido_match import (
    HeaderCondition,
    extra_form,
    header_matches,
    sql_form,
)
from dicom_file_service.dicom.query_keys import extra_key_values
from dicom_file_service.errors import InvalidParameter

HEADER: dict[str, Any] = {
    "00080008": {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY", "AXIAL"]},
    "00080022": {"vr": "DA", "Value": ["20240115"]},
    "00080032": {"vr": "TM", "Value": ["1030"]},
    "0008002A": {"vr": "DT", "Value": ["20240115103000.5"]},
    "00081050": {"vr": "PN", "Value": [{"Alphabetic": "Buc^Jérôme", "Ideographic": "山田^太郎"}]},
    "00081110": {
        "vr": "SQ",
        "Value": [
            {"00081155": {"vr": "UI", "Value": ["1.2.3"]}},
            {"00081155": {"vr": "UI", "Value": ["1.2.4"]}, "00081150": {"vr": "UI"}},
        ],
    },
    "00091010": {"vr": "LO", "Value": ["ACME"]},
    "00091001": {"vr": "LO", "Value": ["Scanner 7 "]},
    "00091002": {"vr": "UN", "InlineBinary": "AAE="},
    "00180015": {"vr": "CS", "Value": ["CHEST"]},
    "00180050": {"vr": "DS", "Value": [2.5]},
    "00200012": {"vr": "IS", "Value": [7]},
}


def _matches(name: str, value: str, *, fuzzy: bool = False, level: str = "instance") -> bool:
    params = [(name, value)] + ([("fuzzymatching", "true")] if fuzzy else [])
    (condition,) = parse_query(params, level).header_conditions  # type: ignore[arg-type]
    return header_matches(HEADER, condition)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("BodyPartExamined", "CHEST", True),
        ("BodyPartExamined", "chest", False),  # text is case-sensitive
        ("BodyPartExamined", "CH*", True),
        ("BodyPartExamined", "C?EST", True),
        ("BodyPartExamined", "CHES", False),  # a single value is not a prefix
        ("ImageType", "AXIAL", True),  # any of the values
        ("ImageType", "*MARY", True),
        ("ImageType", "LOCALIZER", False),
        ("00091001", "Scanner 7", True),  # private: its stored VR says how to match
        ("00091001", "Scan*", True),
        ("00091001", "scanner 7", False),
        ("00091002", "AAE=", False),  # bytes never match
        ("00081110.00081155", "1.2.4", True),  # any item of the sequence
        ("ReferencedStudySequence.ReferencedSOPInstanceUID", "9.9,1.2.3", True),  # UID list
        ("00081110.00081155", "1.2", False),
        ("00081110.00081150", "1.2.3", False),  # present, empty: no value to match
        ("AcquisitionDate", "20240101-20240131", True),
        ("AcquisitionDate", "20240116-", False),
        ("AcquisitionDate", "-20240115", True),
        ("AcquisitionTime", "1030", True),  # 103000.000000 within 103000-103059.999999
        ("AcquisitionTime", "1000-1029", False),
        ("AcquisitionTime", "10-11", True),
        ("AcquisitionDateTime", "2024-2025", True),
        ("AcquisitionDateTime", "20240116-", False),
        ("SliceThickness", "2.50", True),  # numbers as numbers
        ("SliceThickness", "2", False),
        ("AcquisitionNumber", "007", True),
        ("PerformingPhysicianName", "BUC^JÉRÔME", True),  # case-insensitive
        ("PerformingPhysicianName", "buc*", True),
        ("PerformingPhysicianName", "BUC^JEROME", False),  # accents need fuzzymatching
        ("PerformingPhysicianName", "山田^太郎", True),  # any component group
        ("PerformingPhysicianName", "Buc^Jérôme=山田^太郎", True),  # the whole name
        ("PerformingPhysicianName", "Buc^Jérôme=", False),  # groups named: the whole name
        ("PerformingPhysicianName", "Buc", False),
        ("StationName", "*", False),  # absent: nothing to match
    ],
)
def test_a_header_matches_as_an_index_would(name: str, value: str, expected: bool) -> None:
    assert _matches(name, value) is expected


def test_fuzzy_matching_drops_accents_from_both_sides() -> None:
    assert _matches("PerformingPhysicianName", "buc^jerome", fuzzy=True)
    assert _matches("PerformingPhysicianName", "BÚC*", fuzzy=True)


def test_the_sql_filter_keeps_every_match_of_text() -> None:
    def form(name: str, value: str) -> Any:
        (c,) = parse_query([(name, value)], "instance").header_conditions
        return sql_form(c)

    assert form("BodyPartExamined", "CH_*").values == ("CH!_%",)
    assert form("00081110.00081155", "1.2\\1.3").values == ("1.2", "1.3")
    assert form("AcquisitionDate", "20240101-").values == ("20240101", None)
    assert form("PerformingPhysicianName", "x") is None  # names: the verdict's alone
    assert form("00091001", "x") is None  # private: VR unknown until the header says


@pytest.mark.parametrize(
    "name",
    ["NoSuchKeyword", "0009100", "0009xx01", "PatientName.PatientID", "00080000", "GGGG0010"],
)
def test_keys_that_name_nothing_matchable_are_refused(name: str) -> None:
    with pytest.raises(InvalidParameter, match=name.split(".")[0][:7]):
        parse_query([(name, "x")], "study")
    with pytest.raises(InvalidParameter):
        parse_query([("includefield", name)], "study")


@pytest.mark.parametrize(
    ("pair", "level"),
    [
        (("SOPInstanceUID", "1.2"), "study"),
        (("Modality", "CT"), "study"),
        (("ModalitiesInStudy", "CT"), "series"),
        (("ReferencedStudySequence", "x"), "instance"),
        (("AcquisitionDate", "2024"), "instance"),
        (("SliceThickness", "thin"), "instance"),
        (("AcquisitionTime", "25x"), "instance"),
    ],
)
def test_values_no_attribute_could_match_are_refused(pair: tuple[str, str], level: str) -> None:
    with pytest.raises(InvalidParameter, match=pair[0]):
        parse_query([pair], level)  # type: ignore[arg-type]


def test_includefield_of_a_sequence_path_returns_its_sequence() -> None:
    query = parse_query([("includefield", "00081110.00081155,00091001")], "study")
    assert query.include == ["00081110", "00091001"]
    assert not query.header_conditions


def test_extra_keys_are_normalised_like_the_indexed_ones() -> None:
    keys = extra_query_keys("BodyPartExamined, PerformingPhysicianName,00081110.00081155")
    rows = extra_key_values(HEADER, tuple(k.path for k in keys))
    assert ("00180015", "value", "CHEST") in rows
    assert ("00081050", "value", "BUC^JÉRÔME=山田^太郎") in rows
    assert ("00081050", "fuzzy", "BUC^JEROME=山田^太郎") in rows
    assert {r for r in rows if r[0] == "00081110.00081155"} == {
        ("00081110.00081155", "value", "1.2.3"),
        ("00081110.00081155", "value", "1.2.4"),
    }
    (dt,) = parse_query([("AcquisitionDateTime", "2023-20240115")], "study").header_conditions
    low, high = extra_form(dt).values
    assert low is not None and high is not None
    assert low <= "20240115103000.5" <= high  # the whole last day is within the range
    assert high < "20240116"
    for bad in ("PatientName", "ReferencedStudySequence", "Nope"):
        with pytest.raises(InvalidParameter):
            extra_query_keys(bad)


def test_a_condition_names_its_key_as_the_request_did() -> None:
    (c,) = parse_query([("00091001", "A")], "study").header_conditions
    assert c == HeaderCondition(c.key, "A") and c.key.name == "00091001" and c.key.vr is None
