"""Table E.1-1 as the repository keeps it: every row loaded, rows read against the standard's
text, patterns matched, and the options' precedence."""

from __future__ import annotations

import pytest

from dicom_file_service.dicom.deid.profile import OPTIONS, Rule, table_e1_1


def test_every_row_is_loaded_and_names_a_basic_action() -> None:
    profile = table_e1_1()
    assert len(profile.rules) == 647
    actions = {"X", "Z", "D", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
    assert {rule.basic for rule in profile.rules} <= actions
    assert all(set(rule.options.values()) <= {"K", "C"} for rule in profile.rules)


@pytest.mark.parametrize(
    ("tag", "basic", "options"),
    [  # as PS3.15 Table E.1-1 reads
        (0x00100010, "Z", {}),
        (0x0020000D, "U", {"retain_uids": "K"}),
        (
            0x00080020,
            "Z",
            {"retain_longitudinal_full_dates": "K", "retain_longitudinal_modified_dates": "C"},
        ),
        (0x00101010, "X", {"retain_patient_characteristics": "K"}),
        (0x00080080, "X/Z/D", {"retain_institution_identity": "K"}),
        (0x00181000, "X/Z/D", {"retain_device_identity": "K"}),
        (0x0040A730, "D", {"clean_structured_content": "C"}),
        (0x00081030, "X", {"clean_descriptors": "C"}),
    ],
)
def test_rows_read_as_the_standard_has_them(tag: int, basic: str, options: dict[str, str]) -> None:
    rule = table_e1_1().rule(tag)
    assert rule is not None
    assert (rule.basic, rule.options) == (basic, options)


def test_patterns_match_the_repeating_groups() -> None:
    profile = table_e1_1()
    for tag, name in ((0x60023000, "Overlay Data"), (0x60204000, "Overlay Comments")):
        rule = profile.rule(tag)
        assert rule is not None and rule.name == name
    curve = profile.rule(0x50100020)
    assert curve is not None and curve.tag == "(50xx,xxxx)"
    assert profile.rule(0x00280010) is None  # Rows: not in the table, kept


def test_an_options_action_replaces_the_basic_one_and_keeping_wins() -> None:
    rule = Rule("(0008,0020)", "Study Date", "Z", {"a": "C", "b": "K"})
    assert rule.action(frozenset()) == "Z"
    assert rule.action(frozenset({"a"})) == "C"
    assert rule.action(frozenset({"a", "b"})) == "K"
    assert rule.action(frozenset({"unrelated"})) == "Z"


def test_every_option_has_its_cid_7050_code() -> None:
    codes = {code for _, code, _ in OPTIONS.values()}
    assert codes == {f"1131{n:02d}" for n in range(1, 13)} - {"113102"}
