"""The decoder chain on real encoded files: JPEG Extended 12-bit and JPEG Lossless 12/16-bit,
and JPEG 2000 decoded by GDCM as by pylibjpeg.

The files are encoded here by DCMTK's ``dcmcjpeg`` (an encoder independent of every decoder
we use) from native images made here; lossless ones must decode to the original samples
exactly, lossy ones to what DCMTK's own ``dcmdjpeg`` decodes them to.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from dicom_file_service.dicom import decoders
from dicom_file_service.dicom.pixels import decode_frame, read_header
from dicom_file_service.errors import ServiceError
from tests.datafiles import all_candidate_files

DCMCJPEG = shutil.which("dcmcjpeg")
needs_dcmtk = pytest.mark.skipif(
    DCMCJPEG is None, reason="DCMTK's dcmcjpeg is not installed (Debian package 'dcmtk')"
)


def _native(path: Path, bits: int, rows: int = 64, cols: int = 48) -> np.ndarray:
    """A MONOCHROME2 image of ``bits``-bit samples: a ramp plus noise, using the full range."""
    rng = np.random.default_rng(bits)
    ramp = np.linspace(0, 2**bits - 1, rows * cols).reshape(rows, cols)
    noise = rng.integers(-(2 ** (bits - 4)), 2 ** (bits - 4), (rows, cols))
    arr = np.clip(ramp + noise, 0, 2**bits - 1).astype(np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "OT"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return arr


def _decoded(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        ds = read_header(f)
        return decode_frame(f, ds, 1, max_pixels=10**8).pixels


def _encode(source: Path, target: Path, option: str) -> None:
    assert DCMCJPEG is not None
    subprocess.run([DCMCJPEG, option, str(source), str(target)], check=True, capture_output=True)


def test_the_chain_puts_pylibjpeg_first_and_gdcm_last() -> None:
    decoders.configure()  # idempotent: a second call changes nothing
    for syntax in (JPEGBaseline8Bit, JPEGLossless, JPEGLosslessSV1):
        plugins = list(get_decoder(syntax)._available)
        assert plugins[0] == "pylibjpeg" and plugins[-1] == "gdcm", plugins
    assert list(get_decoder(JPEGExtended12Bit)._available)[-1] == "gdcm-jpeg-extended"
    assert "gdcm" not in get_decoder(JPEGExtended12Bit)._available
    for syntax in decoders.GDCM_FIRST:
        plugins = list(get_decoder(syntax)._available)
        assert plugins[:2] == ["gdcm", "pylibjpeg"], plugins


def _jpeg_2000_files() -> list[Path]:
    found = []
    for path in all_candidate_files():
        try:
            syntax = dcmread(path, stop_before_pixels=True, force=True).file_meta.TransferSyntaxUID
        except Exception:  # not DICOM, or no file meta: not a JPEG 2000 file either
            continue
        if syntax in decoders.GDCM_FIRST:
            found.append(path)
    return found


def test_gdcm_decodes_every_jpeg_2000_file_as_pylibjpeg_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GDCM decodes JPEG 2000 first for speed: on every JPEG 2000 file there is, each frame it
    decodes through the service's path must be pylibjpeg's, sample for sample."""
    files = _jpeg_2000_files()
    assert len(files) >= 10, files  # pydicom's and pydicom-data's
    compared = 0
    for path in files:
        ours = _frames(path)
        for syntax in decoders.GDCM_FIRST:
            decoder = get_decoder(syntax)
            without = {k: v for k, v in decoder._available.items() if k != "gdcm"}
            monkeypatch.setattr(decoder, "_available", without)
        theirs = _frames(path)
        monkeypatch.undo()
        assert (ours is None) == (theirs is None), path.name
        if ours is not None and theirs is not None:
            assert len(ours) == len(theirs), path.name
            for a, b in zip(ours, theirs, strict=True):
                assert a.dtype == b.dtype and a.shape == b.shape, path.name
                np.testing.assert_array_equal(a, b, err_msg=path.name)
            compared += 1
    assert compared >= 15  # all but the few broken streams neither decodes


def _frames(path: Path) -> list[np.ndarray] | None:
    """Up to three frames as the service decodes them, or None: the file is refused."""
    with open(path, "rb") as f:
        ds = read_header(f)
        count = int(ds.get("NumberOfFrames") or 1)
        try:
            return [
                decode_frame(f, ds, n, max_pixels=10**8).pixels for n in range(1, min(count, 3) + 1)
            ]
        except ServiceError:
            return None


@needs_dcmtk
@pytest.mark.parametrize(("option", "bits"), [("+el", 12), ("+e1", 12), ("+e1", 16)])
def test_jpeg_lossless_decodes_to_the_original_samples(
    tmp_path: Path, option: str, bits: int
) -> None:
    native = tmp_path / "native.dcm"
    original = _native(native, bits)
    encoded = tmp_path / "lossless.dcm"
    _encode(native, encoded, option)
    expected = JPEGLossless if option == "+el" else JPEGLosslessSV1
    assert dcmread(encoded, stop_before_pixels=True).file_meta.TransferSyntaxUID == expected
    np.testing.assert_array_equal(_decoded(encoded), original)


@needs_dcmtk
def test_jpeg_extended_12_bit_decodes_as_dcmtk_does(tmp_path: Path) -> None:
    native = tmp_path / "native.dcm"
    original = _native(native, 12)
    encoded = tmp_path / "extended.dcm"
    _encode(native, encoded, "+ee")
    assert dcmread(encoded, stop_before_pixels=True).file_meta.TransferSyntaxUID == (
        JPEGExtended12Bit
    )
    by_dcmtk = tmp_path / "by-dcmtk.dcm"
    subprocess.run(["dcmdjpeg", str(encoded), str(by_dcmtk)], check=True, capture_output=True)
    reference = dcmread(by_dcmtk).pixel_array
    ours = _decoded(encoded)
    # libjpeg decodes this stream; its inverse DCT rounds differently from the IJG library's
    # by at most one level, which the JPEG standard's accuracy test allows.
    assert np.abs(ours.astype(int) - reference).max() <= 1
    assert np.abs(ours.astype(int) - original).mean() < 2**12 / 100  # and it is the image


@needs_dcmtk
def test_a_12_bit_stream_libjpeg_refuses_decodes_by_gdcm_as_dcmtk_does(tmp_path: Path) -> None:
    """pydicom's JPEG-lossy.dcm: a real encoder's 12-bit stream whose scan header libjpeg
    rejects; GDCM (the IJG library, as DCMTK) decodes it to the same samples."""
    from pydicom.data import get_testdata_file

    path = Path(str(get_testdata_file("JPEG-lossy.dcm")))
    by_dcmtk = tmp_path / "by-dcmtk.dcm"
    subprocess.run(["dcmdjpeg", str(path), str(by_dcmtk)], check=True, capture_output=True)
    arr = _decoded(path)
    assert arr.shape == (1024, 256) and arr.dtype == np.uint16
    np.testing.assert_array_equal(arr, dcmread(by_dcmtk).pixel_array)
