"""The profile applied: markers planted wherever real files hide identity are gone from every
byte of the output under every option set (but where an option retains them), each row of
Table E.1-1 present in the inputs is applied as the table says, references stay consistent
across instances, and the output is deterministic for a key."""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicom_file_service.dicom.deid.engine import Excluded, Request, deidentify
from dicom_file_service.dicom.deid.profile import OPTIONS, table_e1_1
from dicom_file_service.dicom.deid.pseudonyms import Pseudonyms
from tests.datafiles import data_file

KEY = b"a test key"
# Identity tokens: never in any output, whatever the options (they name the patient).
NAME_FAMILY, NAME_GIVEN, PATIENT_ID, ACCESSION = "MRKFAMILY", "MRKGIVEN", "MRKPID77", "MRKACC55"
ALWAYS_GONE = [NAME_FAMILY, NAME_GIVEN, PATIENT_ID, ACCESSION]
# Attribute markers: gone unless the table keeps the attribute under the options.
PLANTED: dict[str, tuple[str, object]] = {
    # keyword: (VR, value)
    "ReferringPhysicianName": ("PN", "MRKREFERRER^DOC"),
    "PerformingPhysicianName": ("PN", "MRKPERFORMER"),
    "OperatorsName": ("PN", "MRKOPERATOR"),
    "InstitutionName": ("LO", "MRKINSTITUTION"),
    "InstitutionAddress": ("ST", "MRKADDRESS"),
    "StationName": ("SH", "MRKSTATION"),
    "DeviceSerialNumber": ("LO", "MRKSERIAL"),
    "StudyID": ("SH", "MRKSTUDYID"),
    "PatientSex": ("CS", "O"),
    "PatientAge": ("AS", "042Y"),
    "StudyDate": ("DA", "20240131"),
    "SeriesDate": ("DA", "20240131"),
    "AcquisitionDate": ("DA", "20240131"),
    "ContentDate": ("DA", "20240131"),
    "PatientBirthDate": ("DA", "19710203"),
    "StudyTime": ("TM", "101112.131415"),
    "SeriesTime": ("TM", "101112.131416"),
    "AcquisitionDateTime": ("DT", "20240131101112.131417"),
    "PatientBirthTime": ("TM", "101112.131418"),
}
FREE_TEXT = {  # descriptions and comments naming the patient (cleaned or removed)
    "StudyDescription": f"CT for {NAME_FAMILY} {PATIENT_ID}",
    "SeriesDescription": f"series of {ACCESSION}",
    "ImageComments": f"comment on {NAME_GIVEN}",
    "PatientComments": f"{NAME_FAMILY} was calm",
}


def _marked() -> Dataset:
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.PatientName = f"{NAME_FAMILY}^{NAME_GIVEN}"
    ds.PatientID, ds.AccessionNumber = PATIENT_ID, ACCESSION
    for keyword, (_, value) in PLANTED.items():
        setattr(ds, keyword, value)
    for keyword, text in FREE_TEXT.items():
        setattr(ds, keyword, text)
    other = Dataset()
    other.PatientID = "MRKOTHERPID"
    ds.OtherPatientIDsSequence = Sequence([other])
    request = Dataset()  # free text in a nested item
    request.RequestedProcedureDescription = f"for {NAME_FAMILY}"
    request.ScheduledProcedureStepDescription = f"step of {NAME_GIVEN}"
    request.ReasonForTheRequestedProcedure = f"{NAME_FAMILY} fell"
    ds.RequestAttributesSequence = Sequence([request])
    report = Dataset()  # a structured report's text
    report.RelationshipType, report.ValueType = "CONTAINS", "TEXT"
    report.TextValue = f"Report on {NAME_FAMILY}, {PATIENT_ID}"
    ds.ContentSequence = Sequence([report])
    ds.private_block(0x0009, "MRKCREATOR", create=True).add_new(0x01, "LO", "MRKPRIVATE")
    ds.add_new(0x0028FFF0, "LO", "MRKUNKNOWN")  # a public tag no dictionary knows
    return ds


def _written(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _option_sets() -> Iterator[frozenset[str]]:
    usable = sorted(OPTIONS)
    yield frozenset()
    for option in usable:
        yield frozenset({option})
    yield frozenset(usable)


@pytest.mark.parametrize(
    "options", list(_option_sets()), ids=lambda o: "+".join(sorted(o)) or "basic"
)
def test_no_marker_survives_but_what_the_options_retain(options: frozenset[str]) -> None:
    original = _marked()
    uids = [str(original.StudyInstanceUID), str(original.SeriesInstanceUID)]
    uids += [str(original.SOPInstanceUID), str(original.FrameOfReferenceUID)]
    regions = ((0, 0, 8, 8),) if "clean_pixel_data" in options else ()
    request = Request(options, pixel_regions=regions)
    out = _written(deidentify(copy.deepcopy(original), request, Pseudonyms(KEY), table_e1_1()))
    for token in [*ALWAYS_GONE, "MRKOTHERPID", "MRKCREATOR", "MRKPRIVATE", "MRKUNKNOWN"]:
        assert token.encode() not in out, token
    for uid in uids:
        assert (uid.encode() in out) == ("retain_uids" in options), uid
    profile = table_e1_1()
    for keyword, (vr, value) in PLANTED.items():
        rule = profile.rule(int(pydicom.datadict.tag_for_keyword(keyword) or 0))
        assert rule is not None, keyword
        action = rule.action(options)
        # K keeps; C on a time keeps it too (dates move by whole days, so times stay).
        kept = action == "K" or (action == "C" and vr == "TM")
        marker = str(value).split("^")[0]
        if vr in ("CS", "AS"):
            continue  # short codes may recur elsewhere by chance; checked below by value
        assert (marker.encode() in out) == kept, (keyword, action)
    result = pydicom.dcmread(io.BytesIO(out))
    for keyword in ("PatientSex", "PatientAge"):
        rule = profile.rule(int(pydicom.datadict.tag_for_keyword(keyword) or 0))
        assert rule is not None
        kept = rule.action(options) == "K"
        assert (result.get(keyword) == PLANTED[keyword][1]) == kept, keyword


def test_the_record_says_what_was_done() -> None:
    options = frozenset({"retain_longitudinal_modified_dates", "clean_descriptors"})
    ds = deidentify(_marked(), Request(options), Pseudonyms(KEY), table_e1_1())
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113105", "113107"]
    assert all(
        item.CodingSchemeDesignator == "DCM" for item in ds.DeidentificationMethodCodeSequence
    )
    assert ds.StudyDate != "20240131" and len(ds.StudyDate) == 8  # moved, not removed
    assert ds.StudyDescription == "CT for * *"  # cleaned: the identifying values replaced
    basic = deidentify(_marked(), Request(), Pseudonyms(KEY), table_e1_1())
    assert basic.LongitudinalTemporalInformationModified == "REMOVED"
    assert "StudyDescription" not in basic


def test_moved_dates_keep_their_intervals_for_one_patient() -> None:
    first, second = _marked(), _marked()
    second.StudyDate = "20240210"
    options = Request(frozenset({"retain_longitudinal_modified_dates"}))
    a = deidentify(first, options, Pseudonyms(KEY), table_e1_1())
    b = deidentify(second, options, Pseudonyms(KEY), table_e1_1())
    from datetime import date

    def day(text: str) -> date:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))

    assert (day(b.StudyDate) - day(a.StudyDate)).days == 10
    assert a.PatientBirthDate == b.PatientBirthDate


def test_the_patient_gets_the_keyed_pseudonym_or_the_requested_values() -> None:
    keys = Pseudonyms(KEY)
    ds = deidentify(_marked(), Request(), keys, table_e1_1())
    assert ds.PatientID == keys.patient_id(PATIENT_ID) == str(ds.PatientName)
    named = deidentify(
        _marked(),
        Request(replace={"PatientName": "SUBJECT^7", "PatientID": "S7"}),
        keys,
        table_e1_1(),
    )
    assert (str(named.PatientName), named.PatientID) == ("SUBJECT^7", "S7")


def test_references_stay_consistent_across_instances_and_the_output_is_deterministic() -> None:
    first, second = _marked(), _marked()
    second.SOPInstanceUID = "1.2.3.4.5.6.7.8.9"
    reference = Dataset()
    reference.ReferencedSOPClassUID = first.SOPClassUID
    reference.ReferencedSOPInstanceUID = first.SOPInstanceUID
    second.ReferencedImageSequence = Sequence([reference])
    keys = Pseudonyms(KEY)
    a = deidentify(copy.deepcopy(first), Request(), keys, table_e1_1())
    b = deidentify(second, Request(), keys, table_e1_1())
    assert a.StudyInstanceUID == b.StudyInstanceUID != first.StudyInstanceUID
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID
    assert b.ReferencedImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    assert b.ReferencedImageSequence[0].ReferencedSOPClassUID == first.SOPClassUID  # standard
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    again = deidentify(copy.deepcopy(first), Request(), Pseudonyms(KEY), table_e1_1())
    assert _written(again) == _written(a)
    other = deidentify(copy.deepcopy(first), Request(), Pseudonyms(b"another"), table_e1_1())
    assert other.StudyInstanceUID != a.StudyInstanceUID


def test_pixel_data_is_unchanged_and_burned_in_text_is_left_out() -> None:
    original = _marked()
    ds = deidentify(copy.deepcopy(original), Request(), Pseudonyms(KEY), table_e1_1())
    assert ds.PixelData == original.PixelData
    original.BurnedInAnnotation = "YES"
    with pytest.raises(Excluded, match="Burned In Annotation"):
        deidentify(original, Request(), Pseudonyms(KEY), table_e1_1())


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown options: shred"):
        deidentify(_marked(), Request(frozenset({"shred"})), Pseudonyms(KEY), table_e1_1())


FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm", "rtdose.dcm", "reportsi.dcm"]


@pytest.mark.parametrize("name", FILES)
def test_each_row_of_the_table_present_in_the_file_is_applied_as_it_says(name: str) -> None:
    original = pydicom.dcmread(data_file(name), force=True)
    keys = Pseudonyms(KEY)
    out = deidentify(copy.deepcopy(original), Request(), keys, table_e1_1())
    profile = table_e1_1()
    checked = 0
    for element in original:
        rule = profile.rule(int(element.tag))
        if rule is None or element.tag.is_private or element.tag in (0x00100010, 0x00100020):
            continue
        action = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U*"}.get(
            rule.basic, rule.basic
        )
        tag, found = element.tag, out.get(element.tag)
        checked += 1
        if action == "X":
            assert found is None, rule.name
        elif action == "Z":
            assert found is not None and (found.is_empty or element.VR == "SQ"), rule.name
        elif element.VR == "SQ":
            assert found is not None and len(found.value) == len(element.value), rule.name
        elif action == "D":
            assert found is not None and not found.is_empty, rule.name
            assert found.value != element.value or element.is_empty, rule.name
        elif action == "U":
            assert found is not None and str(found.value).startswith("2.25."), rule.name
        elif action == "K":
            assert found is not None and found.value == element.value, rule.name
        del tag
    assert checked >= 3, name
