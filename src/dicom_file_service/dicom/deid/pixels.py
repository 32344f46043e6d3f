"""The Clean Pixel Data Option, by regions the requester names (PS3.15 E.3.1).

Text burned into the pixels (an ultrasound's header bar, a screen capture's patient banner)
cannot be found reliably by a program, but its place is usually fixed for a device: the
requester gives the rectangles, ``(x0, y0, x1, y1)`` in pixels, ``x1`` and ``y1`` excluded,
and every frame gets them blanked (stored value of black: the lowest value, or the highest
for MONOCHROME1; 0 in each colour sample). The image is then written back uncompressed: in
its own syntax when that is an uncompressed one (its byte order kept), else in Explicit VR
Little Endian; re-encoding in a compressed syntax of the source's could lose more than the
blanked regions. Colour decoded from YBR is written as RGB. Burned In Annotation becomes NO.

An image whose pixels cannot be decoded here (no decoder for its syntax, 1-bit data) cannot be
cleaned, and is left out with the reason, like one that says it has burned-in text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

Region = tuple[int, int, int, int]
_PIXEL_ONLY = ("ExtendedOffsetTable", "ExtendedOffsetTableLengths")


class CannotClean(Exception):
    """The pixels cannot be decoded and blanked (the message says why)."""


def blank_regions(ds: Dataset, regions: Sequence[Region]) -> None:
    """Blank ``regions`` in every frame of ``ds``'s Pixel Data, written back uncompressed."""
    if "PixelData" not in ds:
        return  # nothing drawn, nothing to clean
    if int(ds.get("BitsAllocated", 0) or 0) == 1:
        raise CannotClean("1-bit pixel data cannot be cleaned by region")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises many kinds: no decoder, corrupt stream
        raise CannotClean(f"the pixel data cannot be decoded to clean it: {exc}") from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    shaped = pixels.reshape((frames, int(ds.Rows), int(ds.Columns), samples)).copy()
    value = _black(ds, shaped.dtype)
    rows, columns = shaped.shape[1:3]
    for x0, y0, x1, y1 in regions:
        shaped[:, max(y0, 0) : min(y1, rows), max(x0, 0) : min(x1, columns), :] = value
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)))
    if syntax.is_compressed:
        syntax = ExplicitVRLittleEndian
    order: Literal["<", ">"] = "<" if syntax.is_little_endian else ">"
    data = shaped.astype(shaped.dtype.newbyteorder(order), copy=False).tobytes()
    ds.PixelData = data + b"\0" if len(data) % 2 else data
    ds["PixelData"].VR = "OB" if shaped.dtype.itemsize == 1 else "OW"
    ds["PixelData"].is_undefined_length = False
    if samples > 1:
        ds.PlanarConfiguration = 0
        if str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
            ds.PhotometricInterpretation = "RGB"  # pydicom decodes YBR to RGB
    for keyword in _PIXEL_ONLY:
        if keyword in ds:
            delattr(ds, keyword)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.BurnedInAnnotation = "NO"


def _black(ds: Dataset, dtype: np.dtype) -> int:
    if int(ds.get("SamplesPerPixel", 1) or 1) > 1:
        return 0
    bits = int(ds.get("BitsStored", dtype.itemsize * 8) or dtype.itemsize * 8)
    signed = np.issubdtype(dtype, np.signedinteger)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return high if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1" else low
