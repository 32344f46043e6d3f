"""Clean Pixel Data by regions: the regions are blank in every frame and nothing else of the
image changes, whatever syntax it came in; it is written uncompressed and says Burned In
Annotation NO; an image that cannot be decoded is left out with the reason."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate

from dicom_file_service.dicom.deid.engine import Excluded, Request, deidentify
from dicom_file_service.dicom.deid.profile import table_e1_1
from dicom_file_service.dicom.deid.pseudonyms import Pseudonyms
from tests.datafiles import data_file

REGIONS = ((0, 0, 12, 5), (20, 30, 1000, 34))  # the second runs past the right edge


def _cleaned(ds: Dataset) -> Dataset:
    request = Request(frozenset({"clean_pixel_data"}), pixel_regions=REGIONS)
    deidentify(ds, request, Pseudonyms(b"k", variant=request.variant), table_e1_1())
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(out.getvalue()))


def _frames(ds: Dataset, pixels: np.ndarray) -> np.ndarray:
    """``pixels`` as (frames, rows, columns, samples)."""
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return pixels.reshape(frames, int(ds.Rows), int(ds.Columns), int(ds.SamplesPerPixel))


def _mask(ds: Dataset) -> np.ndarray:
    mask = np.zeros((int(ds.Rows), int(ds.Columns)), dtype=bool)
    for x0, y0, x1, y1 in REGIONS:
        mask[y0:y1, x0:x1] = True
    return mask


@pytest.mark.parametrize(
    ("name", "black"),
    [
        ("CT_small.dcm", -32768),  # signed 16-bit, Explicit VR Little Endian
        ("MR_small_bigendian.dcm", -32768),  # Explicit VR Big Endian
        ("emri_small.dcm", 0),  # 10 frames, unsigned
        ("JPEG2000.dcm", None),  # a compressed syntax: decoded, written uncompressed
        ("SC_rgb_jpeg_dcmtk.dcm", 0),  # lossy YBR colour: written as RGB
        ("SC_rgb_rle_2frame.dcm", 0),  # RLE colour, two frames
    ],
)
def test_the_regions_are_blank_in_every_frame_and_the_rest_unchanged(
    name: str, black: int | None
) -> None:
    source = pydicom.dcmread(data_file(name))
    source.BurnedInAnnotation = "YES"  # cleaned, not left out
    before = source.pixel_array.copy()
    out = _cleaned(source)
    after = _frames(out, out.pixel_array)
    before = _frames(out, before)
    mask = _mask(out)
    inside, outside = after[:, mask, :], (after != before)[:, ~mask, :]
    if black is None:
        bits = int(out.BitsStored)
        black = -(1 << (bits - 1)) if int(out.PixelRepresentation) else 0
    assert (inside == black).all()
    assert not outside.any()
    assert out.BurnedInAnnotation == "NO"
    syntax = source.file_meta.TransferSyntaxUID
    assert out.file_meta.TransferSyntaxUID == (
        "1.2.840.10008.1.2.1" if syntax.is_compressed else syntax
    )
    if int(out.SamplesPerPixel) > 1:
        assert out.PhotometricInterpretation == "RGB" and out.PlanarConfiguration == 0


def test_monochrome1_is_blanked_to_its_highest_value() -> None:
    source = pydicom.dcmread(data_file("CT_small.dcm"))
    source.PhotometricInterpretation = "MONOCHROME1"
    out = _cleaned(source)
    assert (out.pixel_array[_mask(out)] == 32767).all()


def test_pixels_that_cannot_be_decoded_are_left_out_with_the_reason() -> None:
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"  # JPEG 2000 Lossless
    ds.PixelData = encapsulate([b"not a codestream"])
    with pytest.raises(Excluded, match="cannot be decoded"):
        _cleaned(ds)


def test_clean_pixel_data_needs_regions_and_regions_need_it() -> None:
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    for request in (
        Request(frozenset({"clean_pixel_data"})),
        Request(pixel_regions=((0, 0, 1, 1),)),
    ):
        with pytest.raises(ValueError, match="go together"):
            deidentify(ds, request, Pseudonyms(b"k"), table_e1_1())
