"""The grayscale pipeline: Modality LUT → VOI LUT → polarity, straight to the output range.

PS3.4 N.2 and PS3.3 C.11: stored values go through the Modality LUT (C.11.1: a rescale or
a LUT) to modality values, through the VOI LUT (C.11.2: a window, a LUT, or here the
min–max window when the file has neither) to the output range, and are inverted for
(0028,0004) *Photometric Interpretation* MONOCHROME1. The formulas map to 8 bits directly
(ymin = 0, ymax = 255) in float64 and truncate to integers as DCMTK's dcmimgle does, so that
our renderings match its ``dcmj2pnm`` to within rounding.

Enhanced multi-frame images carry the rescale and the window per frame, in the (0028,9145)
*Pixel Value Transformation Sequence* and (0028,9132) *Frame VOI LUT Sequence* of the
(5200,9230) *Per-Frame* or (5200,9229) *Shared Functional Groups Sequence* (C.7.6.16); those
take precedence over the top-level attributes.

Integer frames of at most 16 bits are not transformed pixel by pixel: the pipeline is
evaluated once for every possible stored value (2^8 or 2^16 of them) and the frame is mapped
through the resulting table in one pass, which is both exact and several times faster.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dicom_file_service.dicom.elements import encoding

VoiFunction = Literal["LINEAR", "LINEAR_EXACT", "SIGMOID"]
Floats = NDArray[np.float64]
#: Offset added to modality values in 16-bit output when they can be negative.
SIGNED_OFFSET_16 = 32768


@dataclass(frozen=True)
class Lut:
    """A lookup table as PS3.3 C.11.1.1.1 / C.11.2.1.1 define them.

    (0028,3002) *LUT Descriptor* gives the number of entries, the first input value mapped
    and the bits per entry; inputs below the first value map to the first entry, inputs past
    the last to the last entry.
    """

    first: int
    data: Floats
    bits: int

    def apply(self, x: Floats) -> Floats:
        index = np.floor(x) - self.first
        np.clip(index, 0, len(self.data) - 1, out=index)
        return self.data[index.astype(np.intp)]


@dataclass(frozen=True)
class Window:
    """(0028,1050) *Window Center*, (0028,1051) *Window Width*, (0028,1056) *VOI LUT Function*."""

    center: float
    width: float
    function: VoiFunction = "LINEAR"


@dataclass(frozen=True)
class Grayscale:
    """What a frame's header says about its grayscale pipeline."""

    slope: float = 1.0
    intercept: float = 0.0
    modality_lut: Lut | None = None
    window: Window | None = None
    voi_lut: Lut | None = None
    invert: bool = False
    bits_stored: int = 16
    signed: bool = False


def grayscale_pipeline(ds: Dataset, frame_index: int, photometric: str) -> Grayscale:
    """Collect the Modality LUT, the first VOI transform and the polarity for one frame.

    The Modality LUT Sequence (0028,3000) takes precedence over (0028,1053) *Rescale Slope*
    / (0028,1052) *Rescale Intercept* (C.11.1: only one may be present; DCMTK prefers the
    LUT too). Of the VOI transforms, the first window wins over the first item of the
    (0028,3010) *VOI LUT Sequence* (C.11.2: when both are present, the window is the
    default). MONOCHROME1 is inverted unless (2050,0020) *Presentation LUT Shape* says
    IDENTITY; INVERSE inverts any grayscale image (C.11.6, as DCMTK does).
    """
    groups = _functional_groups(ds, frame_index)
    signed = _int(ds.get("PixelRepresentation")) == 1
    slope, intercept = 1.0, 0.0
    for source in (*_items(groups, "PixelValueTransformationSequence"), ds):
        found_slope = _first_float(source.get("RescaleSlope"))
        found_intercept = _first_float(source.get("RescaleIntercept"))
        if found_slope is not None or found_intercept is not None:
            # A missing half defaults to the identity; a zero slope is invalid and, as in
            # DCMTK, voids the whole rescale.
            if found_slope != 0.0:
                slope = 1.0 if found_slope is None else found_slope
                intercept = found_intercept or 0.0
            break
    modality_lut = _lut(ds, "ModalityLUTSequence", signed)

    window: Window | None = None
    voi_lut: Lut | None = None
    for source in (*_items(groups, "FrameVOILUTSequence"), ds):
        window = _first_window(source)
        voi_lut = _lut(source, "VOILUTSequence", signed)
        if window is not None or voi_lut is not None:
            break

    shape = str(ds.get("PresentationLUTShape") or "").strip().upper()
    invert = shape == "INVERSE" or (photometric == "MONOCHROME1" and shape != "IDENTITY")
    return Grayscale(
        slope=slope,
        intercept=intercept,
        modality_lut=modality_lut,
        window=window,
        voi_lut=voi_lut,
        invert=invert,
        bits_stored=_int(ds.get("BitsStored")) or 16,
        signed=signed,
    )


def parse_voi_function(value: object) -> VoiFunction:
    """(0028,1056) *VOI LUT Function*; absent or unknown values mean LINEAR (C.11.2.1.3)."""
    text = str(value or "").strip().upper()
    if text == "LINEAR_EXACT":
        return "LINEAR_EXACT"
    if text == "SIGMOID":
        return "SIGMOID"
    return "LINEAR"


def window_is_valid(window: Window) -> bool:
    """C.11.2.1.2: LINEAR needs a width of at least 1; LINEAR_EXACT and SIGMOID above 0."""
    if not (math.isfinite(window.center) and math.isfinite(window.width)):
        return False
    return window.width >= 1 if window.function == "LINEAR" else window.width > 0


def display_8bit(
    arr: NDArray[Any], gs: Grayscale, *, window: Window | None, minmax: bool
) -> NDArray[np.uint8]:
    """Stored values → 8-bit display values (P-values scaled to 0..255).

    ``window`` overrides the file's VOI; ``minmax`` ignores the file's VOI and uses the
    min–max window of the frame's modality values.
    """
    arr = _native(arr)
    if _tabulable(arr):
        low, values = _span(arr)
        rows = _rows_of(arr, low)
        x = modality_values(values, gs)
        voi = _choose_voi(gs, window, minmax, lambda: _used_range(rows, x, gs))
        table = _to_uint8(_voi_apply(x, voi), gs.invert)
        return table[rows]
    x = modality_values(arr.astype(np.float64), gs)
    np.nan_to_num(x, copy=False)
    voi = _choose_voi(gs, window, minmax, lambda: (float(x.min()), float(x.max())))
    return _to_uint8(_voi_apply(x, voi), gs.invert)


def modality_16bit(arr: NDArray[Any], gs: Grayscale) -> NDArray[np.uint16]:
    """Stored values → modality values rounded into a 16-bit unsigned range.

    Modality values that the header allows to be negative get ``SIGNED_OFFSET_16`` (32768)
    added; values outside 0..65535 after that are clipped. No VOI, no inversion: these are
    measurements (e.g. Hounsfield units + 32768), not display values.
    """
    arr = _native(arr)
    offset = modality_offset_16(gs, arr.dtype)
    if _tabulable(arr):
        low, values = _span(arr)
        table = _round_to_uint16(modality_values(values, gs), offset)
        return table[_rows_of(arr, low)]
    return _round_to_uint16(modality_values(arr.astype(np.float64), gs), offset)


def modality_offset_16(gs: Grayscale, dtype: np.dtype[Any]) -> int:
    """0, or ``SIGNED_OFFSET_16`` when the header allows negative modality values."""
    if dtype.kind == "f":
        return SIGNED_OFFSET_16
    bits = min(max(gs.bits_stored, 1), 32)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if gs.signed else (0, (1 << bits) - 1)
    ends = modality_values(np.array([low, high], dtype=np.float64), gs)
    lowest = float(gs.modality_lut.data.min()) if gs.modality_lut is not None else float(ends.min())
    return SIGNED_OFFSET_16 if lowest < 0 else 0


def modality_values(x: Floats, gs: Grayscale) -> Floats:
    """C.11.1: the Modality LUT, else ``slope * x + intercept`` (PS3.4 N.2.1.1)."""
    if gs.modality_lut is not None:
        return gs.modality_lut.apply(x)
    if gs.slope != 1.0 or gs.intercept != 0.0:
        return x * gs.slope + gs.intercept
    return x


# --- VOI ---------------------------------------------------------------------------------

Voi = Window | Lut


def _choose_voi(gs: Grayscale, window: Window | None, minmax: bool, value_range: Any) -> Voi:
    if window is not None:
        return window
    if not minmax:
        if gs.window is not None and window_is_valid(gs.window):
            return gs.window
        if gs.voi_lut is not None:
            return gs.voi_lut
    low, high = value_range()
    return minmax_window(low, high)


def minmax_window(low: float, high: float) -> Window:
    """The window spanning the modality values exactly, as C.11.2.1.2.1 counts widths.

    Center (min + max + 1) / 2 and width max − min + 1 put min on ymin and max on ymax in
    the LINEAR formula (it is DCMTK's "min-max window" too).
    """
    return Window(center=(low + high + 1) / 2, width=high - low + 1, function="LINEAR")


def _voi_apply(x: Floats, voi: Voi) -> Floats:
    """The VOI transform of C.11.2 to the continuous output range 0..255."""
    if isinstance(voi, Lut):
        # C.11.2.1.1: the LUT's 2^n output range spans the display range; as in DCMTK,
        # each of the 256 output levels takes an equal share of the 2^n LUT values.
        return voi.apply(x) * (256.0 / float(1 << voi.bits))
    c, w = voi.center, voi.width
    if voi.function == "SIGMOID":
        # C.11.2.1.3.1: y = (ymax - ymin) / (1 + exp(-4 (x - c) / w)) + ymin
        with np.errstate(over="ignore"):
            return 255.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    if voi.function == "LINEAR_EXACT":
        # C.11.2.1.3.2: y = ((x - c) / w + 0.5) * (ymax - ymin) + ymin, clipped
        y = ((x - c) / w + 0.5) * 255.0
    elif w <= 1:
        # C.11.2.1.2.1 with w = 1: a step at c - 0.5 (x <= c - 0.5 → ymin, else ymax)
        return np.where(x <= c - 0.5, 0.0, 255.0)
    else:
        # C.11.2.1.2.1: y = ((x - (c - 0.5)) / (w - 1) + 0.5) * (ymax - ymin) + ymin, clipped
        y = ((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0
    return np.clip(y, 0.0, 255.0, out=y)


def _to_uint8(y: Floats, invert: bool) -> NDArray[np.uint8]:
    """Polarity (MONOCHROME1: ymax - y), then truncation to an integer as DCMTK does."""
    if invert:
        y = np.subtract(255.0, y, out=y if y.flags.writeable else None)
    np.clip(y, 0.0, 255.0, out=y)
    return y.astype(np.uint8)


def _round_to_uint16(x: Floats, offset: int) -> NDArray[np.uint16]:
    y = np.rint(x)
    np.nan_to_num(y, copy=False)
    y += offset
    np.clip(y, 0, 65535, out=y)
    return y.astype(np.uint16)


# --- integer frames through a table ------------------------------------------------------


def _native(arr: NDArray[Any]) -> NDArray[Any]:
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def _tabulable(arr: NDArray[Any]) -> bool:
    """Integer frames of up to 16 bits go through a table of their values (the same formulas,
    once per value instead of once per pixel)."""
    return arr.dtype.kind in "iu" and arr.dtype.itemsize <= 2


def _span(arr: NDArray[Any]) -> tuple[int, Floats]:
    """The frame's lowest stored value, and every value from it to its highest as floats: a
    CT's few thousand, not its type's 65,536 (which cost more than a small frame itself)."""
    low, high = int(arr.min()), int(arr.max())
    return low, np.arange(low, high + 1, dtype=np.float64)


def _rows_of(arr: NDArray[Any], low: int) -> NDArray[np.intp]:
    """Each pixel's row in the table of ``_span``."""
    rows: NDArray[np.intp] = np.subtract(arr, low, dtype=np.intp)
    return rows


def _used_range(rows: NDArray[np.intp], x: Floats, gs: Grayscale) -> tuple[float, float]:
    """Min and max modality value of the frame (``x`` tabulates them, ``rows`` indexes it)."""
    if gs.modality_lut is None:  # a rescale is monotonic: the ends map to the ends
        return float(x[[0, -1]].min()), float(x[[0, -1]].max())
    used = np.bincount(rows.ravel(), minlength=len(x)) > 0
    mapped = x[used]
    return float(mapped.min()), float(mapped.max())


# --- reading the attributes --------------------------------------------------------------


def _functional_groups(ds: Dataset, frame_index: int) -> list[Dataset]:
    """The per-frame item of this frame, then the shared item (C.7.6.16)."""
    groups: list[Dataset] = []
    per_frame = _sequence(ds, "PerFrameFunctionalGroupsSequence")
    if 0 <= frame_index < len(per_frame):
        groups.append(per_frame[frame_index])
    shared = _sequence(ds, "SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    return groups


def _items(groups: list[Dataset], keyword: str) -> list[Dataset]:
    """The first item of ``keyword`` in each functional group that has it."""
    found: list[Dataset] = []
    for group in groups:
        seq = _sequence(group, keyword)
        if seq:
            found.append(seq[0])
    return found


def _sequence(ds: Dataset, keyword: str) -> Sequence[Dataset]:
    try:
        value = ds.get(keyword)
    except Exception:
        return []
    return value if value is not None and not isinstance(value, (str, bytes)) else []


def _first_window(source: Dataset) -> Window | None:
    center = _first_float(source.get("WindowCenter"))
    width = _first_float(source.get("WindowWidth"))
    if center is None or width is None:
        return None
    return Window(center, width, parse_voi_function(source.get("VOILUTFunction")))


def _lut(source: Dataset, keyword: str, signed: bool) -> Lut | None:
    """The first item of a Modality or VOI LUT Sequence, or None if absent or malformed."""
    items = _sequence(source, keyword)
    if not items:
        return None
    item = items[0]
    try:
        descriptor = [int(v) for v in item.LUTDescriptor]
        entries = descriptor[0] or 65536
        first = descriptor[1]
        if signed and first >= 32768:  # US-encoded negative first value (C.11.1.1.1)
            first -= 65536
        data = _lut_data(item, source, entries)
    except Exception:
        return None
    if len(data) == 0:
        return None
    bits = descriptor[2] if 1 <= descriptor[2] <= 16 else 16
    top = int(data.max())
    if top >= 1 << bits:  # descriptor understating the data: trust the data
        bits = top.bit_length()
    return Lut(first=first, data=data, bits=bits)


def _lut_data(item: Dataset, source: Dataset, entries: int) -> Floats:
    """(0028,3006) *LUT Data*: US values, or OW bytes in the dataset's byte order."""
    value = item.LUTData
    if isinstance(value, bytes):
        _implicit, endian = encoding(source)
        count = min(entries, len(value) // 2)
        values = struct.unpack(f"{endian}{count}H", value[: 2 * count])
        return np.asarray(values, dtype=np.float64)
    if isinstance(value, int):
        value = [value]
    return np.asarray(list(value)[:entries], dtype=np.float64)


def _first_float(value: object) -> float | None:
    """The first value of a (possibly multi-valued) DS/IS/FD attribute, if a finite number."""
    if isinstance(value, (MultiValue, list, tuple)):
        value = value[0] if len(value) else None
    if value is None or isinstance(value, (bytes, bytearray)):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None
