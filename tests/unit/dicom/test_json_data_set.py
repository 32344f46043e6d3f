"""DICOM JSON written as a data set: the same bytes as pydicom's writer gives for the same
JSON (what the C-FIND answers were before), on every element of many real files."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataset import Dataset
from pynetdicom.dsutils import encode

from dicom_file_service.dicom.dicom_json import dataset_to_json
from dicom_file_service.dicom.json_data_set import encode_attributes, non_ascii

FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "rtdose.dcm",
    "reportsi.dcm",
    "reportsi_with_empty_number_tags.dcm",
    "nested_priv_SQ.dcm",
    "SC_rgb_small_odd.dcm",
    "examples_palette.dcm",
    "chrJapMulti.dcm",
    "chrH31.dcm",
    "chrKoreanMulti.dcm",
    "chrRuss.dcm",
    "chrArab.dcm",
    "chrGerm.dcm",
    "chrX1.dcm",
    "chrSQEncoding.dcm",
]


def _pydicom_bytes(attributes: dict[str, Any], implicit_vr: bool) -> bytes:
    with warnings.catch_warnings():  # pydicom's doubts about a value (an over-long UID)
        warnings.simplefilter("ignore")
        written = encode(Dataset.from_json(attributes), implicit_vr, True)
    assert written is not None
    return written


def _json(name: str) -> dict[str, Any]:
    path = get_charset_files(name)[0] if name.startswith("chr") else get_testdata_file(name)
    assert path is not None, name
    ds = pydicom.dcmread(Path(str(path)), force=True)
    header, _ = dataset_to_json(ds, "")
    return {
        key: value
        for key, value in header.items()
        if not key.startswith("0002") and "BulkDataURI" not in value
    }


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("implicit_vr", [True, False], ids=["implicit", "explicit"])
def test_every_element_is_written_as_pydicom_writes_it(name: str, implicit_vr: bool) -> None:
    header = _json(name)
    charset = {"00080005": {"vr": "CS", "Value": ["ISO_IR 192"]}}
    checked = 0
    for key, attribute in header.items():
        if key == "00080005":
            continue
        single = {key: attribute}
        if non_ascii(single):
            single |= charset
        assert encode_attributes(single, implicit_vr=implicit_vr) == _pydicom_bytes(
            single, implicit_vr
        ), (name, key, attribute)
        checked += 1
    assert checked >= 2
    whole = {k: v for k, v in header.items() if k != "00080005"}
    if non_ascii(whole):
        whole |= charset
    assert encode_attributes(whole, implicit_vr=implicit_vr) == _pydicom_bytes(whole, implicit_vr)


@pytest.mark.parametrize(
    "attribute",
    [
        {"vr": "PN", "Value": [{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎"}]},
        {"vr": "PN", "Value": [{"Ideographic": "山田^太郎"}]},
        {"vr": "PN", "Value": [{"Alphabetic": "A^B"}, {"Alphabetic": "C^D"}]},
        {"vr": "PN"},
        {"vr": "LO", "Value": ["odd"]},
        {"vr": "LO", "Value": [None, "second"]},
        {"vr": "UI", "Value": ["1.2.3"]},
        {"vr": "UI", "Value": ["1.2.3", "1.2.34"]},
        {"vr": "IS", "Value": [7, 12]},
        {"vr": "IS", "Value": [7.0]},
        {"vr": "DS", "Value": [0.1, 2.5, -3]},
        {"vr": "US", "Value": [1, 2]},
        {"vr": "SQ", "Value": [{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "X"}]}}]},
        {"vr": "SQ"},
        {"vr": "SQ", "Value": []},
        {"vr": "UT", "Value": ["Müller " * 20]},
        {"vr": "DA", "Value": ["20240101"]},
        {"vr": "CS"},
    ],
)
@pytest.mark.parametrize("implicit_vr", [True, False], ids=["implicit", "explicit"])
def test_each_kind_of_value(attribute: dict[str, Any], implicit_vr: bool) -> None:
    single = {"00204000": attribute}
    if non_ascii(single):
        single["00080005"] = {"vr": "CS", "Value": ["ISO_IR 192"]}
    assert encode_attributes(single, implicit_vr=implicit_vr) == _pydicom_bytes(single, implicit_vr)


def test_a_value_pydicom_cannot_write_is_sent_empty_and_a_bulk_reference_too() -> None:
    written = encode_attributes(
        {
            "00280010": {"vr": "US", "Value": ["not a number"]},
            "00204000": {"vr": "UT", "BulkDataURI": "00204000"},
        },
        implicit_vr=False,
    )
    assert written == (
        b"\x20\x00\x00\x40UT\x00\x00\x00\x00\x00\x00"  # (0020,4000) UT, long header, empty
        b"\x28\x00\x10\x00US\x00\x00"  # (0028,0010) US, empty
    )
