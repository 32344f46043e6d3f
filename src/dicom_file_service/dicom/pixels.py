"""Read a file's header and decode exactly one frame of its pixel data.

The header's pixel description is read up to the pixel data element (``pixel_header``: the
file meta and groups (0028) on; else the whole header with ``dcmread(stop_before_pixels=True)``),
which leaves the file positioned at that element's tag; pydicom's decoder is then handed
the file itself, so that only the requested frame is read and decoded, never the whole
multi-frame pixel data (PS3.5 A.4 for encapsulated frames, 8.2 for native ones).

Every failure of pydicom or of its decoding plugins is converted here, where it occurs,
into :class:`UndecodablePixelData` naming the transfer syntax and the reason.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import as_pixel_options
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from dicom_file_service.dicom import decoders as _decoders  # noqa: F401  (orders the chain)
from dicom_file_service.dicom.elements import (
    PIXEL_KEYWORDS,
    photometric,
    pixel_element_header,
    reason,
    transfer_syntax,
    ts_name,
)
from dicom_file_service.dicom.pixel_defaults import apply_defaults
from dicom_file_service.dicom.pixel_header import read_pixel_header
from dicom_file_service.dicom.stored import vanished
from dicom_file_service.errors import (
    FrameOutOfRange,
    ImageTooLarge,
    InvalidDicom,
    NoPixelData,
    ServiceError,
    UndecodablePixelData,
)

_DEFER = 64 * 1024
# Encapsulated pixel data up to this size is read in one go before it is decoded (below).
ITEMS_IN_MEMORY = 32 * 1024 * 1024
_FLOAT_BYTES = 8


@dataclass(frozen=True)
class Frame:
    """One decoded frame and the header that describes it.

    ``photometric`` is the (0028,0004) *Photometric Interpretation* of ``pixels`` as decoded,
    which differs from the header's when the decoder already converted YCbCr to RGB.
    """

    header: Dataset
    pixels: np.ndarray[Any, np.dtype[Any]]
    photometric: str
    transfer_syntax: UID
    index: int  # 0-based


def read_header(f: BinaryIO) -> Dataset:
    """The header's pixel description (``pixel_header``: the file meta and groups (0028)
    on; else everything) up to the pixel data; ``f`` is left at the pixel data element's
    tag."""
    start = f.tell()
    try:
        described = read_pixel_header(f)
        if described is not None:
            return described
        f.seek(start)
        # Large values stay deferred: read only if the pipeline asks for them (LUT data),
        # so a header carrying a huge private value costs nothing to render.
        return dcmread(f, stop_before_pixels=True, force=True, defer_size=_DEFER)
    except OSError as exc:  # pydicom looks a file up, and reopens it, by its name
        raise vanished(exc, InvalidDicom(f"cannot read the DICOM header: {exc}")) from exc
    except ServiceError:  # the store failed beneath the reader: not the file's fault
        raise
    except Exception as exc:  # pydicom raises many types on malformed input
        raise InvalidDicom(f"cannot read the DICOM header: {exc}") from exc


def frame_count(ds: Dataset) -> int:
    """(0028,0008) *Number of Frames*, 1 when absent, empty or invalid (PS3.3 C.7.6.6)."""
    try:
        value = ds.get("NumberOfFrames")
        count = int(value) if value not in (None, "") else 1
    except (TypeError, ValueError):
        return 1
    return count if count > 0 else 1


def decode_frame(
    f: BinaryIO,
    ds: Dataset,
    frame: int,
    *,
    max_pixels: int,
    max_bytes: int | None = None,
    start: int = 0,
    frame_table: bytes | None = None,
) -> Frame:
    """Decode the 1-based ``frame`` of the file ``f`` whose header ``read_header`` returned.

    ``start`` is the offset in ``f`` where the DICOM file begins (for deflated files, which
    are read again from there).

    Checks, in order: there is pixel data (else :class:`NoPixelData`), the frame exists
    (:class:`FrameOutOfRange`), (0028,0010) *Rows* x (0028,0011) *Columns* x (0028,0002)
    *Samples per Pixel* fits ``max_pixels`` (:class:`ImageTooLarge`); only then decodes.
    """
    tsyntax = transfer_syntax(ds)
    if tsyntax == DeflatedExplicitVRLittleEndian:
        # The deflated stream cannot be read by offset: inflate the whole dataset.
        f.seek(start)
        try:
            full = dcmread(f, force=True)
        except OSError as exc:  # pydicom reopens a file by name for deferred values
            raise vanished(
                exc,
                UndecodablePixelData(
                    f"{ts_name(tsyntax)}: cannot inflate: {reason(exc, whole=True)}"
                ),
            ) from exc
        except ServiceError:  # the store failed beneath the reader: not the file's fault
            raise
        except Exception as exc:
            raise UndecodablePixelData(
                f"{ts_name(tsyntax)}: cannot inflate: {reason(exc, whole=True)}"
            ) from exc
        keyword = next((k for k in PIXEL_KEYWORDS.values() if k in full), None)
        pixel_vr = None
    else:
        full = None
        keyword, pixel_vr = pixel_element_header(f, ds)
    if keyword is None:
        raise NoPixelData("the file has no Pixel Data, Float Pixel Data or Double Float Pixel Data")

    count = frame_count(ds)
    if full is None and tsyntax.is_encapsulated and count == 1:
        f = _items_in_memory(f)
    for dataset in (ds, full):
        if dataset is not None:
            apply_defaults(dataset)  # an omitted but unambiguous Type 1 attribute
            if _invalid_number_of_frames(dataset):
                dataset.NumberOfFrames = count  # pydicom's decoders would fail on the value
    if not 1 <= frame <= count:
        raise FrameOutOfRange(f"frame {frame} is out of range: the image has frames 1 to {count}")
    _check_size(ds, tsyntax, max_pixels, max_bytes)

    try:
        decoder = get_decoder(tsyntax)
        if full is None:
            opts = as_pixel_options(
                ds, transfer_syntax_uid=tsyntax, pixel_keyword=keyword, number_of_frames=count
            )
            if pixel_vr is not None:
                opts["pixel_vr"] = pixel_vr
            if frame_table is not None and tsyntax.is_encapsulated:
                half = len(frame_table) // 2  # offsets, then lengths (parse.frame_table)
                opts["extended_offsets"] = (frame_table[:half], frame_table[half:])
            arr, props = decoder.as_array(f, index=frame - 1, raw=False, **opts)
        else:
            arr, props = decoder.as_array(full, index=frame - 1, raw=False)
    except NotImplementedError as exc:
        raise UndecodablePixelData(
            f"{ts_name(tsyntax)}: no decoder for this transfer syntax ({reason(exc, whole=True)})"
        ) from exc
    except OSError as exc:  # pydicom reopens a file by name for deferred values
        raise vanished(
            exc,
            UndecodablePixelData(
                f"{ts_name(tsyntax)}: decoding failed: OSError: {reason(exc, whole=True)}"
            ),
        ) from exc
    except ServiceError:  # the store failed beneath the reader: not the file's fault
        raise
    except BaseException as exc:  # decoders and plugins raise anything on bad streams
        # Rust-based plugins (pylibjpeg-rle) panic with pyo3's PanicException, which is a
        # BaseException; interpreter exits and interrupts are let through.
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        raise UndecodablePixelData(
            f"{ts_name(tsyntax)}: decoding failed: {type(exc).__name__}: {reason(exc, whole=True)}"
        ) from exc
    decoded_as = str(props.get("photometric_interpretation") or photometric(ds))
    return Frame(
        header=ds, pixels=arr, photometric=decoded_as, transfer_syntax=tsyntax, index=frame - 1
    )


def _items_in_memory(f: BinaryIO) -> BinaryIO:
    """The rest of ``f`` from the encapsulated pixel data's value on, read in one go (up to
    ``ITEMS_IN_MEMORY`` bytes), as a file positioned at its start: for a single frame,
    which is all of the items.

    pydicom reads a single frame's fragments item after item, and twice: once to learn the
    frame's properties, once to decode it. From a remote store each of those small reads is
    a ranged request: MR2_J2KR's one frame of 10 fragments cost 18 requests and twice its
    bytes, against one request and its bytes once read here. (Of several frames pydicom
    reads only the one asked for, by the offsets captured at ingest or by the items'
    headers: those reads stay its own.)
    """
    here = f.tell()
    end = f.seek(0, io.SEEK_END)
    f.seek(here)
    if end - here > ITEMS_IN_MEMORY:
        return f
    return io.BytesIO(f.read(end - here))


def _invalid_number_of_frames(ds: Dataset) -> bool:
    if "NumberOfFrames" not in ds:
        return False
    try:
        return int(ds.NumberOfFrames) < 1
    except (TypeError, ValueError):
        return True


def _check_size(ds: Dataset, tsyntax: UID, max_pixels: int, max_bytes: int | None) -> None:
    try:
        rows = int(ds.Rows)
        columns = int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel") or 1)
        bits = int(ds.get("BitsAllocated") or 8)
    except OSError as exc:  # pydicom reopens a file by name for deferred values
        raise vanished(
            exc, UndecodablePixelData(f"{ts_name(tsyntax)}: Rows or Columns cannot be read: {exc}")
        ) from exc
    except ServiceError:  # the store failed beneath the reader: not the file's fault
        raise
    except Exception as exc:
        raise UndecodablePixelData(
            f"{ts_name(tsyntax)}: (0028,0010) Rows, (0028,0011) Columns or (0028,0002) "
            "Samples per Pixel is missing or invalid"
        ) from exc
    if rows <= 0 or columns <= 0:
        raise UndecodablePixelData(f"{ts_name(tsyntax)}: Rows and Columns must be positive")
    size = rows * columns * samples
    if size > max_pixels:
        raise ImageTooLarge(
            f"one frame is {rows} x {columns} x {samples} = {size} samples, "
            f"more than the limit of {max_pixels}"
        )
    # The decoded frame and the pipeline's floating-point intermediates (8 bytes a sample
    # at most): what rendering one frame may hold at once.
    needed = size * ((bits + 7) // 8 + _FLOAT_BYTES)
    if max_bytes is not None and needed > max_bytes:
        raise ImageTooLarge(
            f"one frame is {rows} x {columns} x {samples} samples of {bits} bits: decoding "
            f"and rendering it takes up to {needed} bytes, more than the limit of {max_bytes} "
            "(setting DICOM_FS_MAX_RENDER_BYTES)"
        )
