"""The Retain Safe Private Option: exactly the private attributes Table E.3.10-1 lists for
their creator are kept (in whichever block the creator holds), with their creators; their UIDs
are mapped and their sequences de-identified; every other private attribute and creator goes.
The same holds for a file read in implicit VR, where private values are unknown bytes."""

from __future__ import annotations

import io

import pydicom
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence

from dicom_file_service.dicom.deid.engine import Request, deidentify
from dicom_file_service.dicom.deid.profile import table_e1_1
from dicom_file_service.dicom.deid.pseudonyms import Pseudonyms
from dicom_file_service.dicom.deid.safe_private import safe_private
from tests.datafiles import data_file

SERIES_UID = "1.2.826.0.1.3680043.8.498.99999"
SAFE = Request(frozenset({"retain_safe_private"}))


def _with_private() -> Dataset:
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    for tag in [t for t in ds.keys() if t.is_private]:  # noqa: SIM118 - tags, not elements
        del ds[tag]
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0019100C, "IS", "1000")  # B Value: safe
    ds.add_new(0x00191008, "CS", "MRKHEADERTYPE")  # not on the list
    ds.add_new(0x00190011, "LO", "SIEMENS MR HEADER")  # the same creator in block 11
    ds.add_new(0x0019110E, "FD", [0.0, 0.0, 1.0])  # Diffusion Gradient Direction: safe
    ds.add_new(0x00190012, "LO", "MRKVENDOR")  # a creator the list does not know
    ds.add_new(0x0019120C, "IS", "4242")
    ds.add_new(0x00990010, "LO", "NQHeader")
    ds.add_new(0x00991002, "UI", SERIES_UID)  # Analyzed Series UID: kept, mapped
    item = Dataset()
    item.PatientName = "MRKFAMILY^MRKGIVEN"
    ds.add_new(0x7E010010, "LO", "HOLOGIC, Inc.")
    ds.add_new(0x7E011010, "SQ", Sequence([item]))  # High Resolution Data Sequence
    return ds


def _copy(ds: Dataset, request: Request = SAFE) -> Dataset:
    deidentify(ds, request, Pseudonyms(b"k", variant=request.variant), table_e1_1())
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(out.getvalue()))


def test_the_table_is_loaded() -> None:
    table = safe_private()
    assert len(table) == 479
    assert table[(0x2001, "Philips Imaging DD 001", 0x0A)] == "IS"  # written (2001,xx0a)
    assert table[(0x0019, "SIEMENS MR HEADER", 0x0C)] == "IS"
    assert table[(0x7053, "Philips PET Private Group", 0x00)] == "DS"
    assert (0x0019, "SIEMENS MR HEADER", 0x08) not in table


def test_only_the_listed_attributes_and_their_creators_are_kept() -> None:
    out = _copy(_with_private())
    kept = {int(t): out[t].value for t in out.keys() if t.is_private}  # noqa: SIM118
    assert set(kept) == {
        0x00190010, 0x0019100C, 0x00190011, 0x0019110E, 0x00990010, 0x00991002,
        0x7E010010, 0x7E011010,
    }  # fmt: skip
    assert kept[0x0019100C] == 1000
    assert kept[0x00991002] == Pseudonyms(b"k", variant=SAFE.variant).uid(SERIES_UID)
    assert b"MRK" not in io.BytesIO(out.PixelData).getvalue()
    written = io.BytesIO()
    out.save_as(written, enforce_file_format=True)
    assert b"MRK" not in written.getvalue()  # the item's name and the unknown vendor gone
    codes = [i.CodeValue for i in out.DeidentificationMethodCodeSequence]
    assert "113111" in codes  # Retain Safe Private Option


def test_without_the_option_no_private_attribute_is_kept() -> None:
    out = _copy(_with_private(), Request())
    assert not [t for t in out.keys() if t.is_private]  # noqa: SIM118


def test_a_file_read_in_implicit_vr_keeps_the_same_and_maps_its_uids() -> None:
    bare = DicomBytesIO()
    bare.is_little_endian, bare.is_implicit_VR = True, True
    write_dataset(bare, _with_private())
    ds = pydicom.dcmread(io.BytesIO(bare.getvalue()), force=True)
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    out = _copy(ds)
    kept = {int(t) for t in out.keys() if t.is_private}  # noqa: SIM118
    assert {0x0019100C, 0x0019110E, 0x00991002} <= kept
    assert 0x00191008 not in kept and 0x0019120C not in kept
    value = out[0x00991002].value  # read back in implicit VR: unknown bytes again
    uid = value.decode().strip("\x00") if isinstance(value, bytes) else str(value)
    assert uid == Pseudonyms(b"k", variant=SAFE.variant).uid(SERIES_UID)
