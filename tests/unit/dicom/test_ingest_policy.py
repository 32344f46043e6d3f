"""The ingest policy: imperfect files are kept with their faults said; only what cannot be
addressed or is cut short is refused."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from dicom_file_service.dicom.parse import parse_file
from dicom_file_service.errors import InvalidDicom
from tests.datafiles import data_file
from tests.imperfect_files import IMPERFECT

# The makers write invalid values on purpose; pydicom warns of each.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PREFIX = "/dicom-image/ID/bulkdata"

#: What each imperfect file's warnings must say (a fragment of one of them); None: nothing,
#: the file breaks a rule the archive does not judge (Type 2 attributes, lengths, VRs).
SAID = {
    "no_pixel_data_under_an_image_module": "has no Pixel Data",
    "pixel_data_shorter": "frames past its end cannot be decoded",
    "pixel_data_longer": "Pixel Data holds",
    "sop_instance_uid_not_a_uid": "SOP Instance UID",
    "uids_with_leading_zeros": "Study Instance UID",
    "pixel_representation_missing": "(0028,0103) Pixel Representation is missing",
    "samples_per_pixel_missing": "(0028,0002) Samples per Pixel is missing",
    "planar_configuration_missing": "(0028,0006) Planar Configuration is missing",
    "type_2_attributes_missing": None,
    "odd_length_value": None,
    "wrong_vr": None,
    "jpeg_extended_12_bit": None,
}


def test_every_imperfect_file_has_its_expectation() -> None:
    assert set(SAID) == set(IMPERFECT)


@pytest.mark.parametrize("name", sorted(IMPERFECT))
def test_an_imperfect_file_is_kept_and_its_fault_said(tmp_path: Path, name: str) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(IMPERFECT[name].make())
    parsed = parse_file(path, bulk_data_uri_prefix=PREFIX)
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    assert parsed.sop_instance_uid == ds.SOPInstanceUID  # addressed by the UIDs as sent
    assert parsed.study_instance_uid == ds.StudyInstanceUID
    fragment = SAID[name]
    if fragment is None:
        assert not parsed.warnings
    else:
        assert any(fragment in warning for warning in parsed.warnings), parsed.warnings


@pytest.mark.parametrize(
    ("uid", "why"),
    [
        ("1." + "2" * 70, "more than the 64"),
        ("1.2 3", "spaces"),
        ("1.2/3", "'/'"),
        ("1.2\x013", "control"),
        ("1.2,3", "'/'"),
        ("1.2.é", "non-ASCII"),
    ],
)
def test_a_uid_that_cannot_address_the_instance_is_refused(
    tmp_path: Path, uid: str, why: str
) -> None:
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.SeriesInstanceUID = uid
    path = tmp_path / "x.dcm"
    ds.save_as(path)
    with pytest.raises(InvalidDicom, match="could not be addressed") as raised:
        parse_file(path, bulk_data_uri_prefix=PREFIX)
    assert why in raised.value.detail


def test_pixel_data_running_past_the_end_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(data_file("CT_small.dcm").read_bytes()[:-100])
    with pytest.raises(InvalidDicom, match="truncated"):
        parse_file(path, bulk_data_uri_prefix=PREFIX)


@pytest.mark.parametrize("name", ["CT_small.dcm", "rtplan.dcm"])  # after pixels / no pixels
@pytest.mark.parametrize("padding", [1, 3, 7])
def test_zero_padding_after_the_last_element_is_kept_and_said(
    tmp_path: Path, name: str, padding: int
) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(data_file(name).read_bytes() + bytes(padding))
    parsed = parse_file(path, bulk_data_uri_prefix=PREFIX)
    assert any(f"{padding} zero byte(s)" in w for w in parsed.warnings), parsed.warnings


def test_an_element_cut_inside_its_header_is_still_truncation(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(data_file("CT_small.dcm").read_bytes() + b"\xe0\x7f\x10")
    with pytest.raises(InvalidDicom, match="not a complete element"):
        parse_file(path, bulk_data_uri_prefix=PREFIX)
