"""Every key QIDO-RS matches on has its column in the index, at the attribute's level."""

from __future__ import annotations

from typing import get_args

from dicom_file_service.dicom.qido import MATCHABLE, Condition, Key
from dicom_file_service.index import qido as index_qido


def test_every_matching_key_has_a_column_of_its_level() -> None:
    for attribute in MATCHABLE:
        table = index_qido._TABLES[attribute.level]
        keys: list[Key] = ["value"]
        if attribute.kind == "pn":
            keys.append("fuzzy")
        if attribute.keyword in index_qido.DATE_TIME_COLUMNS:
            keys.append("date_time")
        for key in keys:
            column = index_qido.column_name(Condition(attribute, "equal", (), key))
            assert column in table.c, (attribute.keyword, key, column)


def test_the_mapping_names_only_matching_keys() -> None:
    keywords = {a.keyword for a in MATCHABLE}
    assert set(index_qido.COLUMNS) == keywords
    assert set(index_qido.FUZZY_COLUMNS) == {a.keyword for a in MATCHABLE if a.kind == "pn"}
    assert set(index_qido.DATE_TIME_COLUMNS) <= keywords
    assert set(get_args(Key)) == {"value", "fuzzy", "date_time"}
