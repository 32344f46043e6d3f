"""The framing validator: whether a file's bytes add up to the elements it declares.

pydicom is lenient by design; an archive must not be. A value that runs past the end of the
file, a final element cut inside its header, elements after the pixel data that do not fit,
encapsulated pixel data without its delimiter: each is a file cut short, refused here with a
precise ``InvalidDicom``, from the file's bytes and the (deferred) header pydicom read,
without reading any large value.

What is complete but does not agree with itself (native pixel data of another length than
its attributes call for, an Image Pixel module with no Pixel Data) is not truncation: it is
kept as sent, and the fault is returned in words for the ingest policy's warnings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

from dicom_file_service.dicom.elements import (
    PIXEL_DATA,
    PIXEL_TAGS,
    UNDEFINED,
    photometric,
    read_element_header,
    walk_encapsulated,
)
from dicom_file_service.errors import InvalidDicom

# (0028,0002) Samples per Pixel, (0028,0004) Photometric Interpretation, (0028,0010) Rows,
# (0028,0011) Columns, (0028,0100) Bits Allocated: present only with pixel data (PS3.3 C.7.6.3).
_IMAGE_PIXEL_KEYS = ("00280002", "00280004", "00280010", "00280011", "00280100")


@dataclass(frozen=True)
class PixelElement:
    """The pixel data element as found: its tag, VR and value length, and for encapsulated
    pixel data the (position, length) of each of its items."""

    tag: int
    vr: str
    length: int
    items: list[tuple[int, int]] = field(default_factory=list)
    fault: str | None = None  # what is wrong with it that does not stop it being kept


_HEADER = 8  # the shortest element header (PS3.5 7.1.2)


def padding_fault(f: BinaryIO, at: int, size: int) -> str | None:
    """The fault of fewer bytes than an element header after the last element: zero bytes
    are a writer's padding, said and kept (None when there are none); anything else is an
    element cut inside its header, a truncated file (``InvalidDicom``)."""
    if at >= size:
        return None
    f.seek(at)
    tail = f.read(size - at)
    if size - at < _HEADER and not tail.strip(b"\0"):
        return f"the file ends with {size - at} zero byte(s) after its last element: ignored"
    raise InvalidDicom(
        f"the file ends with {size - at} byte(s) that are not a complete element: it is truncated"
    )


def check_dataset_end(f: BinaryIO, ds: Dataset, size: int) -> str | None:
    """pydicom silently drops a final element cut inside its header: the bytes must add up;
    returns the fault of zero padding after the last element, if any.

    Elements lie in ascending tag order (PS3.5 7.1), so the last one must end the file.
    """
    keys = list(ds.keys())
    if not keys:
        return None
    raw = ds.get_item(keys[-1], keep_deferred=True)
    tell, length = getattr(raw, "value_tell", None), getattr(raw, "length", None)
    if tell is None or length is None:
        return None  # already converted by pydicom: its extent is not recorded
    if length == UNDEFINED:
        if raw.value is None:
            return None  # deferred: its end is not known without reading it
        end = tell + len(raw.value) + 8  # the value, then its delimitation item
    else:
        end = tell + length
    return padding_fault(f, end, size)


def check_trailing_elements(f: BinaryIO, size: int, implicit: bool, endian: str) -> str | None:
    """Elements after the pixel data (padding, signatures) must lie wholly inside the file;
    returns the fault of zero padding after the last one, if any."""
    pos = f.tell()
    while pos < size:
        if size - pos < _HEADER:
            return padding_fault(f, pos, size)
        head = read_element_header(f, pos, implicit, endian)
        if head.length == UNDEFINED:
            return None  # a sequence after the pixel data: not walked, pydicom never reads it
        if head.value_at + head.length > size:
            raise InvalidDicom("the file is truncated: its last element runs past the end")
        pos = head.value_at + head.length
    return None


def check_deferred_values(ds: Dataset, size: int) -> None:
    """A deferred (large) value must lie wholly inside the file; inline ones were read whole.

    The data set's own mapping is read, as ``get_item(tag, keep_deferred=True)`` would
    return each element, for a tenth of the cost (a CT slice: 73 -> 7 us)."""
    raw: Any
    for tag, raw in ds._dict.items():
        if raw is None or not hasattr(raw, "value_tell"):
            continue  # converted by pydicom already, so read whole
        length = raw.length
        if length == UNDEFINED:
            continue
        if raw.value is None and raw.value_tell + length > size:
            raise InvalidDicom(
                f"the file is truncated: element ({tag >> 16:04X},{tag & 0xFFFF:04X}) declares "
                f"{length} bytes but the file ends {raw.value_tell + length - size} bytes short"
            )
        if raw.value is not None and len(raw.value) < length:
            raise InvalidDicom(
                f"the file is truncated inside element ({tag >> 16:04X},{tag & 0xFFFF:04X})"
            )


@dataclass(frozen=True)
class ImageAttributes:
    """What the length of native pixel data is checked against (PS3.3 C.7.6.3)."""

    rows: int
    columns: int
    bits_allocated: int
    samples_per_pixel: int
    frames: int
    photometric: str


def image_attributes(ds: Dataset) -> ImageAttributes | None:
    """The image attributes as pydicom reads them; None when one cannot be read as a number
    (without them the image is not renderable anyway; the renderer says so)."""
    try:
        return ImageAttributes(
            int(ds.Rows),
            int(ds.Columns),
            int(ds.BitsAllocated),
            int(ds.get("SamplesPerPixel", 1) or 1),
            int(ds.get("NumberOfFrames", 1) or 1),
            photometric(ds),
        )
    except (AttributeError, TypeError, ValueError):
        return None


def header_image_attributes(header: dict[str, Any]) -> ImageAttributes | None:
    """``image_attributes`` read from a DICOM JSON header, as pydicom would give each value:
    absent, empty or multi-valued where a number is needed is None, as it is there."""

    def value(key: str, default: Any = None) -> Any:
        element = header.get(key)
        if element is None:
            return default
        values = element.get("Value")
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    try:
        photometric = str(value("00280004") or "").strip().upper()
        return ImageAttributes(
            int(value("00280010", ())),
            int(value("00280011", ())),
            int(value("00280100", ())),
            int(value("00280002", 1) or 1),
            int(value("00280008", 1) or 1),
            photometric,
        )
    except (TypeError, ValueError):
        return None


def check_pixel_element(
    f: BinaryIO,
    size: int,
    *,
    implicit: bool,
    endian: str,
    implicit_vr: Callable[[], str],
    image: Callable[[], ImageAttributes | None],
) -> PixelElement | None:
    """Walk the framing of the pixel data element at ``f``'s position, leaving ``f`` after
    it; None (``f`` unmoved) when the element there is not pixel data. ``implicit_vr`` gives
    Pixel Data's VR where the encoding has none, ``image`` what native pixel data's length is
    checked against."""
    start = f.tell()
    head = read_element_header(f, start, implicit, endian)
    if head.tag not in PIXEL_TAGS:
        f.seek(start)
        return None
    tag, length, value_at = head.tag, head.length, head.value_at
    vr = head.vr or (implicit_vr() if tag == PIXEL_DATA else dictionary_VR(tag))
    if length != UNDEFINED:
        if value_at + length > size:
            raise InvalidDicom(
                f"the file is truncated: Pixel Data declares {length} bytes but only "
                f"{size - value_at} remain"
            )
        f.seek(value_at + length)
        return PixelElement(tag, vr, length, fault=_pixel_size_fault(image(), length))
    items: list[tuple[int, int]] = []
    walked = walk_encapsulated(f, value_at, size, endian, items)
    f.seek(value_at + walked + 8)
    return PixelElement(tag, vr, walked, items)


def _pixel_size_fault(image: ImageAttributes | None, length: int) -> str | None:
    """Why native pixel data of ``length`` bytes disagrees with its attributes, None if not.

    A shorter value leaves frames that cannot be decoded (rendering them says so); a longer
    one has bytes no frame uses. Both are kept as sent."""
    if image is None:
        return None
    spp = image.samples_per_pixel
    expected_bits = image.rows * image.columns * spp * image.frames * image.bits_allocated
    if spp == 3 and image.photometric in ("YBR_FULL_422", "YBR_PARTIAL_422"):
        # Native 4:2:2: two luminance and one pair of chrominance samples per two pixels,
        # so two thirds of three samples per pixel (PS3.3 C.7.6.3.1.2).
        expected_bits = expected_bits // 3 * 2
    expected = (expected_bits + 7) // 8
    # A value's length is even (PS3.5 7.1.1): a byte of padding either way is not a fault.
    if expected - 1 <= length <= expected + 1:
        return None
    return (
        f"Pixel Data holds {length} bytes but Rows, Columns, Samples per Pixel, Number of "
        f"Frames and Bits Allocated call for {expected}"
        + (": frames past its end cannot be decoded" if length < expected else "")
    )


def image_without_pixels(header: dict[str, Any], has_pixels: bool) -> str | None:
    """Why a header with the Image Pixel module but no pixel data is odd, None if not so.

    A dose report, a secondary object or a vendor's CT with its pixels in a private element
    carries image attributes without Pixel Data; a file cut exactly before it looks the same.
    Either way everything in it is complete, so it is kept, and the fault said."""
    if has_pixels or not any(k in header for k in _IMAGE_PIXEL_KEYS):
        return None
    return (
        "the file describes an image (Image Pixel module: Rows, Columns, ...) but has no "
        "Pixel Data (7FE0,0010): it has no pixels to render"
    )
