"""Imperfect files as real modalities and old archives send them, made by the tests.

Each is complete (nothing runs past its end) but breaks a rule of the standard: the archive
must keep every one byte for byte, address it by the UIDs it carries, and report its fault.
``IMPERFECT`` names each maker and whether its pixels can still be decoded.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.datafiles import data_file


def _fresh(name: str) -> Dataset:
    ds = pydicom.dcmread(data_file(name))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    return ds


def _bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def no_pixel_data_under_an_image_module() -> bytes:
    """Rows, Columns, Bits Allocated ... but no Pixel Data (a dose report, a vendor CT with
    its pixels in a private element)."""
    ds = _fresh("CT_small.dcm")
    del ds.PixelData
    return _bytes(ds)


def pixel_data_shorter_than_its_attributes() -> bytes:
    ds = _fresh("CT_small.dcm")
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    return _bytes(ds)


def pixel_data_longer_than_its_attributes() -> bytes:
    ds = _fresh("CT_small.dcm")
    ds.PixelData = ds.PixelData + bytes(4096)
    return _bytes(ds)


def sop_instance_uid_not_a_uid() -> bytes:
    """A hash where the UID should be, as pydicom's bad_sequence.dcm has."""
    ds = _fresh("CT_small.dcm")
    ds.SOPInstanceUID = generate_uid().replace(".", "")[-40:] + "abcdef"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return _bytes(ds)


def uids_with_leading_zeros() -> bytes:
    ds = _fresh("CT_small.dcm")
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.0" + generate_uid()[-20:].replace(".", ".0")
    return _bytes(ds)


def pixel_representation_missing_multiframe() -> bytes:
    """A multi-frame image without (0028,0103) Pixel Representation."""
    ds = _fresh("emri_small.dcm")
    del ds.PixelRepresentation
    return _bytes(ds)


def samples_per_pixel_missing() -> bytes:
    ds = _fresh("MR_small.dcm")
    del ds.SamplesPerPixel
    return _bytes(ds)


def planar_configuration_missing_rgb() -> bytes:
    ds = _fresh("SC_rgb.dcm")
    del ds.PlanarConfiguration
    return _bytes(ds)


def type_2_attributes_missing() -> bytes:
    ds = _fresh("CT_small.dcm")
    for keyword in ("PatientName", "PatientID", "StudyDate", "StudyTime", "AccessionNumber"):
        if keyword in ds:
            delattr(ds, keyword)
    return _bytes(ds)


def odd_length_value() -> bytes:
    """(0010,0020) Patient ID of 3 bytes: values have even lengths (PS3.5 7.1.1)."""
    ds = _fresh("CT_small.dcm")
    ds.PatientID = "ABCD"
    data = _bytes(ds)
    even = b"\x10\x00\x20\x00LO\x04\x00ABCD"
    assert data.count(even) == 1
    return data.replace(even, b"\x10\x00\x20\x00LO\x03\x00ABC")


def wrong_vr() -> bytes:
    """(0010,0010) Patient Name written with VR LO instead of PN."""
    ds = _fresh("CT_small.dcm")
    data = _bytes(ds)
    pn = b"\x10\x00\x10\x00PN"
    assert data.count(pn) == 1
    return data.replace(pn, b"\x10\x00\x10\x00LO")


def jpeg_extended_12_bit() -> bytes:
    """pydicom's JPEG-lossy.dcm: a real encoder's 12-bit JPEG Extended stream."""
    return _bytes(_fresh("JPEG-lossy.dcm"))


@dataclass(frozen=True)
class Imperfect:
    make: Callable[[], bytes]
    renders: bool  # whether its first frame can still be decoded and rendered


IMPERFECT: dict[str, Imperfect] = {
    "no_pixel_data_under_an_image_module": Imperfect(no_pixel_data_under_an_image_module, False),
    "pixel_data_shorter": Imperfect(pixel_data_shorter_than_its_attributes, False),
    "pixel_data_longer": Imperfect(pixel_data_longer_than_its_attributes, True),
    "sop_instance_uid_not_a_uid": Imperfect(sop_instance_uid_not_a_uid, True),
    "uids_with_leading_zeros": Imperfect(uids_with_leading_zeros, True),
    "pixel_representation_missing": Imperfect(pixel_representation_missing_multiframe, True),
    "samples_per_pixel_missing": Imperfect(samples_per_pixel_missing, True),
    "planar_configuration_missing": Imperfect(planar_configuration_missing_rgb, True),
    "type_2_attributes_missing": Imperfect(type_2_attributes_missing, True),
    "odd_length_value": Imperfect(odd_length_value, True),
    "wrong_vr": Imperfect(wrong_vr, True),
    "jpeg_extended_12_bit": Imperfect(jpeg_extended_12_bit, True),
}
