"""Tag selectors and the natural-JSON answer, on headers captured from real files."""

from __future__ import annotations

import pydicom
import pytest

from dicom_file_service.dicom.parse import parse_file
from dicom_file_service.dicom.tags import TagPath, lookup, parse_selector
from dicom_file_service.errors import InvalidTag, TagNotFound
from tests.datafiles import data_file as datafile

PREFIX = "/dicom-image/ID/bulkdata"


def answer(name: str, selector: str) -> dict[str, object]:
    p = parse_file(datafile(name), bulk_data_uri_prefix=PREFIX)
    return lookup(p.header, parse_selector(selector), p.bulk_lengths)


@pytest.mark.parametrize(
    "selector",
    [
        "(0010,0010)",
        "0010,0010",
        "00100010",
        "0x00100010",
        "0X00100010",
        "PatientName",
        "patientname",
        " ( 0010 , 0010 ) ",
        "(0010,0010)".lower(),
    ],
)
def test_every_form_selects_patient_name(selector: str) -> None:
    assert parse_selector(selector) == TagPath(((0x00100010, None),))


def test_sequence_paths_in_both_spellings() -> None:
    expected = TagPath(((0x00081115, 0), (0x0020000E, None)))
    assert parse_selector("ReferencedSeriesSequence[0].SeriesInstanceUID") == expected
    assert parse_selector("(0008,1115)[0].(0020,000E)") == expected
    assert str(expected) == "(0008,1115)[0].(0020,000E)"


@pytest.mark.parametrize(
    "selector",
    [
        "",
        "(0010,001)",
        "0010-0010",
        "(0010,0010",
        "NotAKeyword",
        "(GGGG,0010)",
        "0x0010",
        "BeamSequence.BeamName",
        "BeamSequence[-1].BeamName",
        "PatientName[0]",
        "a.b.c.d.e.f.g.h.i",
        "x" * 300,
    ],
)
def test_invalid_selectors_list_the_accepted_forms(selector: str) -> None:
    with pytest.raises(InvalidTag, match=r"accepted forms: \(0010,0010\)"):
        parse_selector(selector)


def test_answer_shape_for_a_person_name() -> None:
    assert answer("CT_small.dcm", "PatientName") == {
        "tag": "(0010,0010)",
        "keyword": "PatientName",
        "name": "Patient's Name",
        "vr": "PN",
        "vm": 1,
        "value": "CompressedSamples^CT1",
    }


def test_numbers_lists_and_empty_values() -> None:
    assert answer("CT_small.dcm", "Rows")["value"] == 128
    position = answer("CT_small.dcm", "ImagePositionPatient")
    assert position["vm"] == 3
    assert position["value"] == [-158.135803, -179.035797, -75.699997]
    ds = pydicom.dcmread(datafile("CT_small.dcm"))
    empty = next(e for e in ds if e.VM == 0 and e.VR not in ("SQ", "OB", "OW"))
    got = answer("CT_small.dcm", f"{int(empty.tag):08X}")
    assert (got["vm"], got["value"]) == (0, None)


def test_file_meta_and_private_tags() -> None:
    assert answer("CT_small.dcm", "(0002,0010)")["value"] == "1.2.840.10008.1.2.1"
    private = answer("CT_small.dcm", "(0043,1029)")
    assert private["keyword"] == ""
    assert private["vr"] == "OB"
    assert private["value"] == {"bulk_data_uri": f"{PREFIX}/00431029", "length": 2068}
    creator = answer("CT_small.dcm", "(0043,0010)")
    assert creator["name"] == "Private Creator"


def test_sequences_give_items_keyed_by_keyword() -> None:
    ds = pydicom.dcmread(datafile("rtplan.dcm"))
    beams = answer("rtplan.dcm", "BeamSequence")
    assert beams["vr"] == "SQ"
    assert len(beams["value"]) == len(ds.BeamSequence)  # type: ignore[arg-type]
    assert beams["value"][0]["BeamName"] == ds.BeamSequence[0].BeamName  # type: ignore[index]
    nested = answer("rtplan.dcm", "BeamSequence[0].ControlPointSequence[0].GantryAngle")
    assert nested["value"] == float(ds.BeamSequence[0].ControlPointSequence[0].GantryAngle)
    assert nested["path"] == "(300A,00B0)[0].(300A,0111)[0].(300A,011E)"


def test_absent_attributes_and_items_are_tag_not_found() -> None:
    with pytest.raises(TagNotFound, match=r"\(0018,9999\)"):
        answer("CT_small.dcm", "(0018,9999)")
    with pytest.raises(TagNotFound, match=r"item \[99\] does not exist"):
        answer("rtplan.dcm", "BeamSequence[99].BeamName")
    with pytest.raises(TagNotFound, match="not a sequence"):
        answer("rtplan.dcm", "PatientName[0].PatientID")
