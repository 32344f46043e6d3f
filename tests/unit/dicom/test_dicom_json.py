"""The fast DICOM JSON conversion agrees with pydicom's, element by element, on every file."""

from __future__ import annotations

import warnings
from typing import Any

import pydicom
import pytest
from pydicom.dataelem import RawDataElement

from dicom_file_service.dicom.dicom_json import _fast_json, _text_codec
from tests.datafiles import all_candidate_files


def _pydicom_json(ds: pydicom.Dataset, tag: Any) -> dict[str, Any]:
    return dict(ds[tag].to_json_dict(None, 1024 * 1024))


def _normalise(element: dict[str, Any]) -> dict[str, Any]:
    """The two deliberate differences from pydicom: padding around a text value is not
    significant (PS3.5 6.2: CS 'DERIVED ' is 'DERIVED'), and an empty component of a
    multi-valued attribute is null in DICOM JSON (PS3.18 F.2.5) where pydicom writes ''."""
    values = element.get("Value")
    if values is None:
        return element
    cleaned = [(v.strip() or None) if isinstance(v, str) else v for v in values]
    if all(v in (None, {}) for v in cleaned):
        return {"vr": element["vr"]}
    return {"vr": element["vr"], "Value": cleaned}


def test_fast_conversion_matches_pydicom_on_every_bundled_file() -> None:
    compared = 0
    mismatches: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in all_candidate_files():
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue  # not DICOM: parse_file's own tests cover refusing it
            for tag in list(ds.keys()):
                raw = ds.get_item(tag)
                if not isinstance(raw, RawDataElement) or raw.VR is None:
                    continue
                fast = _fast_json(raw, raw.VR, _text_codec(ds))
                if fast is None:
                    continue
                try:
                    expected = _pydicom_json(ds, tag)
                except Exception:
                    continue  # pydicom cannot convert it either
                compared += 1
                if _normalise(fast) != _normalise(expected):
                    mismatches.append(f"{path.name} {tag}: {fast} != {expected}")
    assert compared > 5000
    assert mismatches == []


@pytest.mark.parametrize(
    ("vr", "value", "expected"),
    [
        ("DS", b"1.5\\-2 ", [1.5, -2.0]),
        ("IS", b" 12\\-3", [12, -3]),
        (
            "PN",
            b"Doe^John=Ideo=Phon",
            [{"Alphabetic": "Doe^John", "Ideographic": "Ideo", "Phonetic": "Phon"}],
        ),
        ("UI", b"1.2.3\x00", ["1.2.3"]),
        ("US", b"\x01\x00\x02\x00", [1, 2]),
    ],
)
def test_fast_conversion_of_common_vrs(vr: str, value: bytes, expected: list[Any]) -> None:
    ds = pydicom.Dataset()
    raw = RawDataElement(pydicom.tag.Tag(0x00091010), vr, len(value), value, 0, False, True)
    assert _fast_json(raw, vr, _text_codec(ds)) == {"vr": vr, "Value": expected}


def test_values_it_cannot_decode_exactly_go_to_pydicom() -> None:
    ds = pydicom.Dataset()
    ds.SpecificCharacterSet = "ISO_IR 144"  # Cyrillic: pydicom's codecs handle it
    raw = RawDataElement(pydicom.tag.Tag(0x00100010), "PN", 4, b"\xbf\xd5\xe2^", 0, False, True)
    assert _fast_json(raw, "PN", _text_codec(ds)) is None
    bad = RawDataElement(pydicom.tag.Tag(0x00200013), "IS", 3, b"1.5", 0, False, True)
    assert _fast_json(bad, "IS", _text_codec(ds)) is None


def _raw_dataset(charset: str, little_endian: bool = True) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.SpecificCharacterSet = charset
    ds._dict[pydicom.tag.Tag(0x00100010)] = RawDataElement(
        pydicom.tag.Tag(0x00100010), "PN", 2, b"\xc3\xa9", 0, False, little_endian
    )
    ds._dict[pydicom.tag.Tag(0x00280010)] = RawDataElement(
        pydicom.tag.Tag(0x00280010), "US", 2, b"\x01\x00", 0, False, little_endian
    )
    return ds


def test_values_met_before_are_converted_by_what_they_depend_on() -> None:
    """The conversion memo is keyed by VR, bytes, character set and byte order: the same
    bytes under another character set or byte order convert anew."""
    from dicom_file_service.dicom.dicom_json import dataset_to_json

    latin, _ = dataset_to_json(_raw_dataset("ISO_IR 100"), "")
    utf8, _ = dataset_to_json(_raw_dataset("ISO_IR 192"), "")
    big, _ = dataset_to_json(_raw_dataset("ISO_IR 192", little_endian=False), "")
    again, _ = dataset_to_json(_raw_dataset("ISO_IR 100"), "")
    assert latin["00100010"]["Value"] == [{"Alphabetic": "Ã©"}]
    assert utf8["00100010"]["Value"] == [{"Alphabetic": "é"}]
    assert latin["00280010"]["Value"] == [1] and big["00280010"]["Value"] == [256]
    assert again == latin
