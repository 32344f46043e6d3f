"""QIDO-RS query parsing and the normalised query keys (PS3.4 C.2.2.2 matching)."""

from __future__ import annotations

import pytest

from dicom_file_service.dicom.qido import parse_query
from dicom_file_service.dicom.query_keys import pn_key, query_keys, time_key
from dicom_file_service.errors import InvalidParameter


def test_times_compare_as_strings_whatever_their_precision() -> None:
    assert time_key("10") == "100000.000000"
    assert time_key("1030") == "103000.000000"
    assert time_key("10:30:15.5") == "103015.500000"
    assert time_key("1030", upper=True) == "103059.999999"
    assert time_key("103015.5", upper=True) == "103015.599999"
    for bad in ("", "1", "103", "10a0", "103015.1234567", "1030.5.5"):
        assert time_key(bad) is None


def test_person_names_are_matched_upper_case_without_trailing_empty_components() -> None:
    assert pn_key("Doe^John^^^", fuzzy=False) == "DOE^JOHN"
    assert pn_key("Buc^Jérôme=", fuzzy=False) == "BUC^JÉRÔME"
    assert pn_key("Buc^Jérôme", fuzzy=True) == "BUC^JEROME"
    assert pn_key("ﾔﾏﾀﾞ^ﾀﾛｳ", fuzzy=True) == pn_key("ヤマダ^タロウ", fuzzy=True)


def test_query_keys_take_every_level_from_a_header() -> None:
    header = {
        "0020000D": {"vr": "UI", "Value": ["1.2"]},
        "0020000E": {"vr": "UI", "Value": ["1.2.3"]},
        "00100010": {
            "vr": "PN",
            "Value": [{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎"}],
        },
        "00080020": {"vr": "DA", "Value": ["20240115"]},
        "00200013": {"vr": "IS", "Value": [7]},
        "00200011": {"vr": "IS", "Value": ["x"]},
        "00400275": {"vr": "SQ", "Value": [{"00400009": {"vr": "SH", "Value": ["A"]}}, {}]},
        "00080060": {"vr": "CS", "Value": ["C" * 1000]},
    }
    keys = query_keys(header)
    assert keys.study["patient_name"] == "YAMADA^TAROU=山田^太郎"
    assert keys.study["study_datetime"] == "20240115000000.000000"
    assert keys.study["study_time"] is None
    assert keys.instance == {"instance_number": 7}
    assert keys.series["series_number"] is None  # not an integer: not matched, not refused
    assert keys.series["scheduled_procedure_step_ids"] == "\\A\\"
    assert len(keys.series["modality"]) == 256  # cut: an index never refuses the row


def test_a_query_names_its_conditions_and_what_it_returns() -> None:
    query = parse_query(
        [
            ("PatientName", "doe*"),
            ("00100020", "P1"),
            ("StudyInstanceUID", "1.2,1.3"),
            ("BodyPartExamined", "CHEST"),
            ("includefield", "00081030,StudyDescription,all,00091001"),
            ("limit", "5"),
            ("offset", "10"),
        ],
        "study",
    )
    by_keyword = {c.attribute.keyword: c for c in query.conditions}
    assert by_keyword["PatientName"].op == "like"
    assert by_keyword["PatientName"].values[0] == "DOE%"
    assert by_keyword["PatientID"].values == ("P1",)
    assert by_keyword["StudyInstanceUID"].values == ("1.2", "1.3")
    (header,) = query.header_conditions  # no column: matched on stored headers
    assert (header.key.path, header.value) == (("00180015",), "CHEST")
    assert query.include_all and {"00081030", "00091001", "00180015"} <= set(query.include)
    assert (query.limit, query.offset) == (5, 10)
    with pytest.raises(InvalidParameter, match="Modality"):  # a series key at study level
        parse_query([("Modality", "CT")], "study")
    with pytest.raises(InvalidParameter, match="NotAKeyword"):
        parse_query([("includefield", "NotAKeyword")], "study")


def test_wildcards_escape_the_databases_own_wildcards() -> None:
    (condition,) = parse_query([("StudyDescription", "50%_off*")], "study").conditions
    assert condition.values == ("50!%!_off%",)


def test_date_and_time_together_are_one_date_time_range() -> None:
    (condition,) = parse_query(
        [("StudyDate", "20240101-20240102"), ("StudyTime", "2300-0100")], "study"
    ).conditions
    assert (condition.attribute.keyword, condition.key) == ("StudyDate", "date_time")
    assert condition.values == ("20240101230000.000000", "20240102010059.999999")


@pytest.mark.parametrize(
    "pair",
    [
        ("StudyDate", "2024"),
        ("StudyDate", "-"),
        ("StudyTime", "99x"),
        ("SeriesNumber", "one"),
        ("limit", "ten"),
        ("fuzzymatching", "1"),
    ],
)
def test_malformed_values_are_refused(pair: tuple[str, str]) -> None:
    with pytest.raises(InvalidParameter):
        parse_query([pair], "series")
