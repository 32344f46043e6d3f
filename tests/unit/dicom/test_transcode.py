"""Every stored syntax to every syntax the service claims to write, decoded by another library
than the one that encoded it, against the original's pixels as pydicom decodes them.

Encoders and the decoders that check them: RLE by pylibjpeg-rle, read by pydicom's own RLE
decoder; JPEG-LS by CharLS (pyjpegls) and JPEG by libjpeg-turbo (Pillow), both read by
Thomas Richter's libjpeg (pylibjpeg-libjpeg); JPEG 2000 by pylibjpeg-openjpeg, read by
Pillow's own OpenJPEG build (the one J2K codec at hand: the same library, another build and
binding, so the comparison with the original's pixels is what makes it a check); native
syntaxes read as raw bytes with numpy. Lossless must be exact, lossy at least
40 dB PSNR over the original's range of values.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import convert_color_space

from dicom_file_service.dicom.dicom_json import dataset_to_json
from dicom_file_service.dicom.encoders import NATIVE, TARGETS, unencodable
from dicom_file_service.dicom.frames import transcoded_frames
from dicom_file_service.dicom.transcode import image_params, stored_image_params, transcode
from dicom_file_service.errors import ImageTooLarge, NotAcceptable
from tests.datafiles import data_file

SOURCES = [
    "image_dfl.dcm",  # 8-bit monochrome, deflated
    "CT_small.dcm",  # 16-bit signed monochrome, Explicit VR Little Endian
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
    "JPGExtended.dcm",  # 12-bit lossy JPEG
    "693_J2KI.dcm",  # 14-bit signed lossy JPEG 2000
    "SC_rgb.dcm",  # RGB, Explicit VR Little Endian
    "SC_rgb_rle_2frame.dcm",  # RGB, two frames, RLE
    "SC_rgb_jpeg_dcmtk.dcm",  # YBR_FULL JPEG Baseline
    "SC_ybr_full_422_uncompressed.dcm",
]
LIMIT = 1 << 28


def _reference(ds: Dataset) -> np.ndarray[Any, Any]:
    """The original's pixels (pydicom's decoders), frames first, colour as RGB."""
    pixels = ds.pixel_array
    ybr = ds.SamplesPerPixel == 3 and ds.PhotometricInterpretation.startswith("YBR")
    if ybr and not ds.file_meta.TransferSyntaxUID.is_compressed:
        pixels = convert_color_space(pixels, "YBR_FULL", "RGB")
    return pixels if int(ds.get("NumberOfFrames", 1) or 1) > 1 else pixels[np.newaxis]


def _independent(ds: Dataset) -> np.ndarray[Any, Any]:
    """The transcoded file's pixels, decoded by a library other than its encoder."""
    tsyntax = str(ds.file_meta.TransferSyntaxUID)
    count = int(ds.get("NumberOfFrames", 1) or 1)
    signed = ds.PixelRepresentation == 1
    rows, columns, samples = ds.Rows, ds.Columns, ds.SamplesPerPixel
    if tsyntax in NATIVE:
        kind = f"{'i' if signed else 'u'}{ds.BitsAllocated // 8}"
        flat = np.frombuffer(ds.PixelData, dtype="<" + kind)
        if samples == 3 and ds.PhotometricInterpretation == "YBR_FULL_422":
            return _reference(ds)  # subsampled layout: expanded by pydicom, not a codec
        shape = (count, rows, columns, samples) if samples == 3 else (count, rows, columns)
        out = flat[: int(np.prod(shape))].reshape(shape)
        if samples == 3 and ds.PhotometricInterpretation == "YBR_FULL":
            out = convert_color_space(out, "YBR_FULL", "RGB")
        return out
    # pydicom's plugins only hand the bitstream over and undo what each library does to
    # sample values (Pillow widens to 16 bits and offsets signed samples).
    plugin = next(v for k, v in _OTHER_DECODER.items() if tsyntax.startswith(k))
    arr, _ = get_decoder(tsyntax).as_array(ds, decoding_plugin=plugin)
    return arr if count > 1 else arr[np.newaxis]


#: The decoder that reads each encoder's output: never the encoder's own library.
_OTHER_DECODER = {
    "1.2.840.10008.1.2.5": "pydicom",  # encoded by pylibjpeg-rle
    "1.2.840.10008.1.2.4.5": "pylibjpeg",  # by Pillow (libjpeg-turbo) or, .57, GDCM (IJG);
    #   read by libjpeg
    "1.2.840.10008.1.2.4.70": "pylibjpeg",  # by GDCM (IJG's lossless codec); read by libjpeg
    "1.2.840.10008.1.2.4.8": "pylibjpeg",  # by pyjpegls (CharLS); read by libjpeg
    "1.2.840.10008.1.2.4.9": "pillow",  # by pylibjpeg-openjpeg; read by Pillow's OpenJPEG
}


def _psnr(got: np.ndarray[Any, Any], want: np.ndarray[Any, Any]) -> float:
    error = np.mean((got.astype(np.float64) - want.astype(np.float64)) ** 2)
    spread = float(want.max()) - float(want.min())
    return float("inf") if error == 0 else 10 * np.log10(spread**2 / error)


def _check_meta(data: bytes, original: Dataset, target: str) -> Dataset:
    """The file meta is whole: its group length ends where its last element does."""
    ds = pydicom.dcmread(io.BytesIO(data))
    assert data[128:132] == b"DICM"
    (group_length,) = struct.unpack("<I", data[140:144])
    at = 144
    while struct.unpack("<H", data[at : at + 2])[0] == 0x0002:  # explicit VR, little endian
        if data[at + 4 : at + 6] in (b"OB", b"OW", b"UN", b"UT", b"SQ", b"UC", b"UR"):
            at += 12 + struct.unpack("<I", data[at + 8 : at + 12])[0]
        else:
            at += 8 + struct.unpack("<H", data[at + 6 : at + 8])[0]
    assert at == 144 + group_length
    assert ds.file_meta.TransferSyntaxUID == target
    # The instance's own UIDs, kept (PS3.10 7.1: the meta's are the data set's).
    assert ds.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPClassUID == original.SOPClassUID
    assert ds.SOPInstanceUID == original.SOPInstanceUID
    return ds


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("source", SOURCES)
def test_every_source_to_every_target(source: str, target: str) -> None:
    data = data_file(source).read_bytes()
    original = pydicom.dcmread(io.BytesIO(data))
    if target == original.file_meta.TransferSyntaxUID:  # already so: the stored bytes
        assert transcode(io.BytesIO(data), target, max_bytes=LIMIT) == data
        return
    if unencodable(target, image_params(original)) is not None:
        with pytest.raises(NotAcceptable):
            transcode(io.BytesIO(data), target, max_bytes=LIMIT)
        return
    out = transcode(io.BytesIO(data), target, max_bytes=LIMIT)
    ds = _check_meta(out, original, target)
    got, want = _independent(ds), _reference(original)
    assert got.shape == want.shape
    lossy = TARGETS[target].lossy
    if lossy:
        assert _psnr(got, want) >= 40
        assert ds.LossyImageCompression == "01"
        methods = ds.LossyImageCompressionMethod
        methods = list(methods) if isinstance(methods, pydicom.multival.MultiValue) else [methods]
        assert methods[-1] == TARGETS[target].method
        ratios = ds.LossyImageCompressionRatio
        ratios = list(ratios) if isinstance(ratios, pydicom.multival.MultiValue) else [ratios]
        assert float(ratios[-1]) > 1
    else:
        assert np.array_equal(got, want)
        assert ds.get("LossyImageCompression") == original.get("LossyImageCompression")
    if ds.SamplesPerPixel == 3 and target not in NATIVE:
        expected = {
            "1.2.840.10008.1.2.4.50": "YBR_FULL",
            "1.2.840.10008.1.2.4.51": "YBR_FULL",
            "1.2.840.10008.1.2.4.90": "YBR_RCT",
            "1.2.840.10008.1.2.4.91": "YBR_ICT",
        }.get(target, "RGB")
        assert ds.PhotometricInterpretation == expected


def test_jpeg_extended_is_marked_as_process_2() -> None:
    data = data_file("SC_rgb.dcm").read_bytes()
    out = transcode(io.BytesIO(data), "1.2.840.10008.1.2.4.51", max_bytes=LIMIT)
    frame = next(generate_frames(pydicom.dcmread(io.BytesIO(out)).PixelData, number_of_frames=1))
    assert b"\xff\xc1" in frame[:400] and b"\xff\xc0" not in frame[:400]


def test_the_limit_is_checked_before_decoding() -> None:
    data = data_file("MR_small_RLE.dcm").read_bytes()
    with pytest.raises(ImageTooLarge):
        transcode(io.BytesIO(data), "1.2.840.10008.1.2.1", max_bytes=64 * 64 * 2 - 1)


def test_an_instance_without_pixel_data_goes_in_any_syntax() -> None:
    data = data_file("rtplan.dcm").read_bytes()
    original = pydicom.dcmread(io.BytesIO(data))
    for target in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.1"):
        ds = _check_meta(transcode(io.BytesIO(data), target, max_bytes=LIMIT), original, target)
        assert ds.BeamSequence[0].BeamName == original.BeamSequence[0].BeamName


@pytest.mark.parametrize("source", SOURCES)
def test_the_stored_header_says_what_the_file_says(source: str) -> None:
    ds = pydicom.dcmread(data_file(source))
    header, _ = dataset_to_json(ds, "")
    assert stored_image_params(header) == image_params(ds)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("SC_rgb_jpeg_dcmtk.dcm", "1.2.840.10008.1.2.4.80"),
        ("MR_small_RLE.dcm", "1.2.840.10008.1.2.4.90"),
        ("SC_rgb_rle_2frame.dcm", "1.2.840.10008.1.2.4.50"),
        ("CT_small.dcm", "1.2.840.10008.1.2.5"),
        ("MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.1"),
    ],
)
def test_frames_are_transcoded_one_by_one(source: str, target: str) -> None:
    """Each frame's bitstream is a single-frame image in the target syntax."""
    path = data_file(source)
    original = pydicom.dcmread(path)
    want = _reference(original)
    numbers = list(range(1, len(want) + 1))
    with path.open("rb") as f:
        got = transcoded_frames(f, numbers, target, max_pixels=1 << 24)
    for frame, expected in zip(got, want, strict=True):
        one = Dataset()
        one.file_meta = pydicom.dataset.FileMetaDataset()
        one.file_meta.TransferSyntaxUID = target
        for keyword in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored"):
            setattr(one, keyword, original[keyword].value)
        one.PixelRepresentation = original.PixelRepresentation
        one.PhotometricInterpretation = "YBR_FULL" if "4.50" in target else "RGB"
        if original.SamplesPerPixel == 1:
            one.PhotometricInterpretation = "MONOCHROME2"
        else:
            one.PlanarConfiguration = 0
        one.PixelData = pydicom.encaps.encapsulate([frame]) if target not in NATIVE else frame
        decoded = _independent(one)[0]
        if TARGETS[target].lossy:
            assert _psnr(decoded, expected) >= 40
        else:
            assert np.array_equal(decoded, expected)


def test_frames_refuse_what_no_encoder_takes() -> None:
    with data_file("CT_small.dcm").open("rb") as f, pytest.raises(NotAcceptable):
        transcoded_frames(f, [1], "1.2.840.10008.1.2.4.50", max_pixels=1 << 24)
    with data_file("CT_small.dcm").open("rb") as f, pytest.raises(NotAcceptable):
        transcoded_frames(f, [1], "1.2.840.10008.1.2.4.201", max_pixels=1 << 24)
