"""Rendering parity with DCMTK's ``dcmj2pnm`` on every pixel-bearing test file.

For each file of pydicom's test files and the pydicom-data package that has pixel data, our
default rendering of frame 1 is compared with ``dcmj2pnm``'s rendering of the same frame with
the same VOI: the file's first window (``+Wi 1``), else its first VOI LUT (``+Wl 1``), else
the min–max window (``+Wm``); overlays off. DCMTK is given the frame decoded by pydicom and
written uncompressed (explicit VR little endian), so that only the rendering pipelines are
compared, not the decoders (DCMTK has no JPEG 2000 decoder). Native files it reads as they are.

Pass: mean absolute difference ≤ 1 grey level and 99.9th percentile ≤ 2, per channel.

Files that cannot be decoded are listed in ``UNDECODABLE`` with the reason, and must raise
``UndecodablePixelData``; files where DCMTK is the one that differs are listed in
``DCMTK_DIFFERS`` with the reason, and something meaningful is asserted about our output.
Both lists are checked to be exact, so neither can grow or go stale silently.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import apply_color_lut
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicom_file_service.dicom.render import RenderOptions, render_array
from dicom_file_service.errors import UndecodablePixelData
from tests.datafiles import pydicom_data_dir, pydicom_test_dir

DCMJ2PNM = shutil.which("dcmj2pnm")
MAX_PIXELS = 50_000_000
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_IMAGE_PIXEL_PROPERTIES = {
    "Rows": "rows",
    "Columns": "columns",
    "BitsAllocated": "bits_allocated",
    "BitsStored": "bits_stored",
    "PixelRepresentation": "pixel_representation",
}

pytestmark = [
    pytest.mark.dcmtk,
    # Some test files are deliberately malformed; pydicom says so with UserWarnings.
    pytest.mark.filterwarnings("ignore::UserWarning:pydicom"),
    pytest.mark.skipif(
        DCMJ2PNM is None, reason="DCMTK's dcmj2pnm is not installed (Debian package 'dcmtk')"
    ),
]

#: Files with pixel data that no decoder available to pydicom can decode, and why.
UNDECODABLE: dict[str, str] = {
    "JPEG2000-embedded-sequence-delimiter.dcm": (
        "the JPEG 2000 fragment embeds a sequence delimiter: openjpeg cannot read the header"
    ),
    "MR_truncated.dcm": "the Pixel Data value is shorter than Rows x Columns x 2 bytes",
    "meta_missing_tsyntax.dcm": "Pixel Data without Rows, Columns or Bits Allocated",
    "nested_priv_SQ.dcm": "Pixel Data without Rows, Columns or Bits Allocated",
}

#: Files where DCMTK's rendering differs from ours for a reason of DCMTK's, and why. Each is
#: checked another way instead (``_check_without_dcmtk``).
DCMTK_DIFFERS: dict[str, str] = {
    "rtdose_expb.dcm": (
        "32-bit samples in OW under Explicit VR Big Endian: DCMTK swaps them as 16-bit words, "
        "pydicom reads 32-bit big-endian values (as the file was made from rtdose.dcm)"
    ),
    "rtdose_expb_1frame.dcm": "as rtdose_expb.dcm",
    "SC_rgb_expb_32bit.dcm": (
        "DCMTK refuses 32-bit samples in OB, and pydicom cannot rewrite a big-endian file "
        "as little endian for it"
    ),
    "SC_rgb_expb_32bit_2frame.dcm": "as SC_rgb_expb_32bit.dcm",
    "gdcm-US-ALOKA-16.dcm": "DCMTK does not support segmented palette colour LUTs",
    "gdcm-US-ALOKA-16_big.dcm": "DCMTK does not support segmented palette colour LUTs",
    "SC_rgb_small_odd_jpeg.dcm": (
        "9 pixels of YBR_FULL: DCMTK's YCbCr to RGB offsets Cb/Cr by 127.5 instead of 128 "
        "and truncates each term, which is up to 2 levels off PS3.3 C.7.6.3.1.2; over 9 "
        "pixels that makes a mean above 1"
    ),
}

#: Listed files whose rendering must equal that of their little-endian twin, which is itself
#: compared with DCMTK (or, for the ALOKA palette, with pydicom's own LUT expansion).
TWINS = {
    "rtdose_expb.dcm": "rtdose.dcm",
    "rtdose_expb_1frame.dcm": "rtdose_1frame.dcm",
    "SC_rgb_expb_32bit.dcm": "SC_rgb_32bit.dcm",
    "SC_rgb_expb_32bit_2frame.dcm": "SC_rgb_32bit_2frame.dcm",
    "gdcm-US-ALOKA-16_big.dcm": "gdcm-US-ALOKA-16.dcm",
}


def _root_files() -> Iterator[tuple[str, Path]]:
    for root in (pydicom_test_dir(), pydicom_data_dir()):
        for path in sorted(root.rglob("*")):
            if path.is_file():
                yield path.relative_to(root).as_posix(), path


def _has_pixel_data(path: Path) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = dcmread(path, force=True, defer_size=64)
        except Exception:
            return False
        return any(tag in ds for tag in _PIXEL_TAGS)


CASES = [(name, path) for name, path in _root_files() if _has_pixel_data(path)]


def test_the_lists_name_only_files_that_exist() -> None:
    names = {name for name, _ in CASES}
    assert set(UNDECODABLE) <= names
    assert set(DCMTK_DIFFERS) <= names
    # each twin is itself checked directly (against DCMTK, or another way), not via a twin
    assert set(TWINS) <= set(DCMTK_DIFFERS)
    assert not set(TWINS.values()) & (set(TWINS) | set(UNDECODABLE))
    assert set(TWINS.values()) <= names
    assert len(CASES) > 150  # both sources were found


@pytest.mark.parametrize(("name", "path"), CASES, ids=[name for name, _ in CASES])
def test_rendering_matches_dcmtk(name: str, path: Path, tmp_path: Path) -> None:
    options = RenderOptions()
    if name in UNDECODABLE:
        with pytest.raises(UndecodablePixelData) as info:
            render_array(path, options, max_pixels=MAX_PIXELS)
        assert info.value.detail.startswith("transfer syntax ")  # says which, and why
        return
    ours = render_array(path, options, max_pixels=MAX_PIXELS)
    assert ours.dtype == np.uint8
    if name in DCMTK_DIFFERS:
        _check_without_dcmtk(name, path, ours)
        return
    header = _read(path, stop_before_pixels=True)
    theirs = _dcmtk_render(path, header, tmp_path)
    assert theirs.shape == ours.shape, f"DCMTK gives {theirs.shape}, we give {ours.shape}"
    mean, p999 = _difference(ours, theirs)
    assert (mean <= 1).all() and (p999 <= 2).all(), (
        f"mean |diff| {mean.round(3)}, 99.9th percentile {p999} per channel"
    )


def _check_without_dcmtk(name: str, path: Path, ours: np.ndarray) -> None:
    assert ours.max() > ours.min(), "the rendering is flat"
    if name in TWINS:
        twin = render_array(path.with_name(TWINS[name]), RenderOptions(), max_pixels=MAX_PIXELS)
        np.testing.assert_array_equal(ours, twin)
        return
    ds = _read(path)
    if name == "gdcm-US-ALOKA-16.dcm":
        # pydicom's own expansion of the segmented LUTs, 16-bit entries shifted to 8 bits
        expected = apply_color_lut(ds.pixel_array, ds) >> 8
        np.testing.assert_array_equal(ours, expected.astype(np.uint8))
        assert (ours[..., 0] != ours[..., 2]).any(), "not in colour"
        return
    if name == "SC_rgb_small_odd_jpeg.dcm":
        # PS3.3 C.7.6.3.1.2 YBR_FULL to RGB, in float64 and rounded, on the raw YCbCr
        ybr = get_decoder(_transfer_syntax(ds)).as_array(ds, index=0, raw=True)[0]
        y, cb, cr = (ybr[..., i].astype(np.float64) for i in range(3))
        rgb = np.stack(
            [
                y + 1.402 * (cr - 128),
                y - (0.114 * 1.772 / 0.587) * (cb - 128) - (0.299 * 1.402 / 0.587) * (cr - 128),
                y + 1.772 * (cb - 128),
            ],
            axis=-1,
        )
        expected = np.clip(np.floor(rgb + 0.5), 0, 255)
        assert np.abs(ours.astype(np.float64) - expected).max() <= 1
        return
    raise AssertionError(f"{name} is listed without a check")


def _difference(ours: np.ndarray, theirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    diff = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
    channels = diff.reshape(-1, 1) if diff.ndim == 2 else diff.reshape(-1, diff.shape[-1])
    return channels.mean(axis=0), np.percentile(channels, 99.9, axis=0)


def _dcmtk_render(path: Path, header: Dataset, tmp_path: Path) -> np.ndarray:
    source = _uncompressed_frame(path, tmp_path / "frame1.dcm")
    out = tmp_path / "dcmtk.pnm"
    assert DCMJ2PNM is not None
    command = [DCMJ2PNM, "+F", "1", "-O", "+op", *_voi_arguments(header), str(source), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and out.exists(), f"dcmj2pnm failed: {done.stderr}"
    with Image.open(out) as image:
        return np.asarray(image)


def _voi_arguments(header: Dataset) -> list[str]:
    """The same VOI our default picks: first window, else first VOI LUT, else min–max."""
    for item in _frame_voi_items(header):
        window = _first_window(item)
        if window is not None:
            return ["+Ww", repr(window[0]), repr(window[1]), *window[2]]
    window = _first_window(header)
    if window is not None:
        return ["+Wi", "1"]
    if header.get("VOILUTSequence"):
        return ["+Wl", "1"]
    return ["+Wm"]


def _frame_voi_items(header: Dataset) -> list[Dataset]:
    """Frame VOI LUT items of frame 1 (per-frame, then shared functional groups)."""
    items = []
    for keyword in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        groups = header.get(keyword)
        if groups and groups[0].get("FrameVOILUTSequence"):
            items.append(groups[0].FrameVOILUTSequence[0])
    return items


def _first_window(ds: Dataset) -> tuple[float, float, list[str]] | None:
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    c = float(center[0] if isinstance(center, MultiValue) else center)
    w = float(width[0] if isinstance(width, MultiValue) else width)
    function = str(ds.get("VOILUTFunction") or "").upper()
    if not (math.isfinite(c) and w >= 1):
        return None
    return c, w, ["+Wfs"] if function == "SIGMOID" else []


def _uncompressed_frame(path: Path, out: Path) -> Path:
    """Frame 1 decoded by pydicom and written explicit VR little endian (native files as is)."""
    ds = _read(path)
    tsyntax = _transfer_syntax(ds)
    native_as_dcmtk_reads_it = not (
        tsyntax.is_encapsulated
        or tsyntax == DeflatedExplicitVRLittleEndian
        # DCMTK refuses 32-bit samples in OB, as some of these files have them
        or (tsyntax.is_little_endian and ds.get("BitsAllocated") == 32)
    )
    if native_as_dcmtk_reads_it:
        return path
    if not _valid_frame_count(ds):
        ds.NumberOfFrames = 1
    arr, props = get_decoder(tsyntax).as_array(ds, index=0, raw=True)
    photometric = str(props["photometric_interpretation"])
    # The decoded frame is never subsampled any more.
    ds.PhotometricInterpretation = "YBR_FULL" if photometric == "YBR_FULL_422" else photometric
    for keyword, prop in _IMAGE_PIXEL_PROPERTIES.items():
        setattr(ds, keyword, int(props[prop]))
    ds.HighBit = ds.BitsStored - 1
    if "NumberOfFrames" in ds:
        ds.NumberOfFrames = 1
    if int(props["samples_per_pixel"]) > 1:
        ds.PlanarConfiguration = 0
    if ds.get("PerFrameFunctionalGroupsSequence"):
        ds.PerFrameFunctionalGroupsSequence = ds.PerFrameFunctionalGroupsSequence[:1]
    data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    ds.PixelData = data + b"\0" * (len(data) % 2)
    ds["PixelData"].VR = "OB" if arr.dtype.itemsize == 1 else "OW"
    ds["PixelData"].is_undefined_length = False
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    try:
        ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)
    except TypeError:  # elements read as implicit VR have no VR to write explicitly
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
    return out


def _read(path: Path, *, stop_before_pixels: bool = False) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(path, force=True, stop_before_pixels=stop_before_pixels)


def _transfer_syntax(ds: Dataset) -> UID:
    uid = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    return UID(str(uid)) if uid else ExplicitVRLittleEndian


def _valid_frame_count(ds: Dataset) -> bool:
    try:
        return int(ds.get("NumberOfFrames") or 1) >= 1
    except (TypeError, ValueError):
        return False
