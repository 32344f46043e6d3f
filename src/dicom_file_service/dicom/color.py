"""Colour frames to 8-bit RGB: RGB, YBR_FULL(_422) and PALETTE COLOR (PS3.3 C.7.6.3.1.2).

pydicom's decoders return planar configuration 1 data interleaved, upsample YBR_FULL_422 and
convert YBR_FULL / YBR_FULL_422 to RGB (``raw=False``), and JPEG 2000 decoders undo the
YBR_RCT / YBR_ICT component transforms; the decoded frame's own photometric interpretation
(not the header's) says what is left to do, so nothing is converted twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut, convert_color_space

from dicom_file_service.dicom.elements import encoding
from dicom_file_service.errors import UndecodablePixelData

_RGB_LIKE = frozenset({"RGB", "YBR_RCT", "YBR_ICT"})
_YBR_FULL = frozenset({"YBR_FULL", "YBR_FULL_422"})
_CHANNELS = ("Red", "Green", "Blue")


def rgb_8bit(arr: NDArray[Any], photometric: str, ds: Dataset) -> NDArray[np.uint8]:
    """A decoded colour frame (H, W, 3), or a PALETTE COLOR frame (H, W), as 8-bit RGB."""
    if photometric == "PALETTE COLOR":
        return palette_rgb(arr, ds)
    if arr.ndim != 3 or arr.shape[-1] < 3:
        raise UndecodablePixelData(
            f"a {photometric} frame should have 3 samples per pixel, got shape {arr.shape}"
        )
    rgb = to_8bit(arr[..., :3], _int(ds.get("BitsStored")) or 8 * arr.dtype.itemsize)
    if photometric in _YBR_FULL:
        converted: NDArray[np.uint8] = convert_color_space(rgb, "YBR_FULL", "RGB")
        return converted
    if photometric in _RGB_LIKE:
        return rgb
    raise UndecodablePixelData(f"photometric interpretation {photometric!r} is not supported")


def to_8bit(arr: NDArray[Any], bits: int) -> NDArray[np.uint8]:
    """Samples of ``bits`` significant bits to 8 bits, by shifting out the low bits.

    That is how DCMTK reduces 16- and 32-bit colour for 8-bit output; it keeps each
    output level an equal share of the input range.
    """
    if arr.dtype == np.uint8 and bits >= 8:
        return arr
    result: NDArray[np.uint8]
    if arr.dtype.kind == "f":
        result = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        return result
    bits = max(1, min(bits, 8 * arr.dtype.itemsize))
    if bits > 8:
        result = np.clip(np.right_shift(arr, bits - 8), 0, 255).astype(np.uint8)
    else:
        scaled = arr.astype(np.float32) * (255.0 / ((1 << bits) - 1))
        result = np.clip(scaled, 0, 255).astype(np.uint8)
    return result


def palette_rgb(arr: NDArray[Any], ds: Dataset) -> NDArray[np.uint8]:
    """PALETTE COLOR: each stored value indexes the Red/Green/Blue Palette Color LUTs.

    (0028,1101-1103) *Palette Color Lookup Table Descriptor* gives entries (0 = 65536),
    the first stored value mapped and the bits per entry; values below the first map to
    entry 0, past the end to the last entry (C.7.6.3.1.5). Segmented LUTs (C.7.9.2) are
    expanded by pydicom. 16-bit entries are shifted to 8 bits.
    """
    if arr.ndim != 2:
        raise UndecodablePixelData(f"a PALETTE COLOR frame should have 1 sample, got {arr.shape}")
    try:
        if "RedPaletteColorLookupTableData" not in ds:
            rgb = apply_color_lut(arr, ds)[..., :3]
            bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
            return to_8bit(rgb, 16 if rgb.dtype.itemsize > 1 and bits > 8 else 8)
        table, bits = _palette_table(ds)
    except UndecodablePixelData:
        raise
    except Exception as exc:
        raise UndecodablePixelData(f"the palette colour lookup tables are invalid: {exc}") from exc
    first, entries = table.first, len(table.rgb)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize <= 2:
        # Tabulate per stored value, then one gather over the frame.
        codes = np.uint8 if arr.dtype.itemsize == 1 else np.uint16
        values = np.arange(1 << (8 * arr.dtype.itemsize), dtype=codes).view(arr.dtype)
        index = np.clip(values.astype(np.int64) - first, 0, entries - 1)
        per_value = to_8bit(table.rgb[index], bits)
        mapped: NDArray[np.uint8] = per_value[arr.view(codes)]
        return mapped
    index = np.clip(arr.astype(np.int64) - first, 0, entries - 1)
    return to_8bit(table.rgb[index], bits)


class _Palette:
    def __init__(self, first: int, rgb: NDArray[np.uint16]) -> None:
        self.first = first
        self.rgb = rgb


def _palette_table(ds: Dataset) -> tuple[_Palette, int]:
    descriptor = [int(v) for v in ds.RedPaletteColorLookupTableDescriptor]
    entries = descriptor[0] or 65536
    first = descriptor[1]
    if _int(ds.get("PixelRepresentation")) == 1 and first >= 32768:
        first -= 65536
    bits = descriptor[2]
    _implicit, endian = encoding(ds)
    channels = [
        _palette_channel(ds[f"{name}PaletteColorLookupTableData"].value, entries, bits, endian)
        for name in _CHANNELS
    ]
    length = min(len(c) for c in channels)
    if length == 0:
        raise UndecodablePixelData("the palette colour lookup tables are empty")
    rgb = np.stack([c[:length] for c in channels], axis=-1)
    if bits <= 8 and int(rgb.max()) > 255:
        rgb >>= 8  # 8-bit entries written in the high byte of 16-bit words
    return _Palette(first, rgb), (16 if bits > 8 else 8)


def _palette_channel(value: bytes, entries: int, bits: int, endian: str) -> NDArray[np.uint16]:
    """LUT Data: 16-bit words in the dataset's byte order, or 8-bit entries packed (C.7.6.3.1.6)."""
    if bits <= 8 and len(value) in (entries, entries + 1):
        return np.frombuffer(value, dtype=np.uint8, count=entries).astype(np.uint16)
    count = min(entries, len(value) // 2)
    return np.frombuffer(value, dtype=f"{endian}u2", count=count).astype(np.uint16)


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None
