"""Frames for WADO-RS ``/frames`` (PS3.18 10.4.1.1.3): as stored, decoded, or transcoded.

As stored, native pixel data gives the frame's bytes (little endian, as PS3.18 8.7.3.3.2 asks
of ``application/octet-stream``) and encapsulated pixel data the frame's compressed bitstream,
found through the extended offsets captured at ingest or the Basic Offset Table, so only that
frame's bytes are read. Otherwise each frame is decoded alone (``pixels.decode_frame``) and,
for a compressed syntax, encoded again alone (``encoders.encode_frame``): a frame's bitstream
is a single-frame image of its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import BinaryIO

import numpy as np
from pydicom.encaps import get_frame
from pydicom.pixels.processing import convert_color_space
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from dicom_file_service.dicom.elements import pixel_element_header, transfer_syntax, ts_name
from dicom_file_service.dicom.encoders import (
    EXPLICIT_LITTLE,
    NATIVE,
    encode_frame,
    unencodable,
)
from dicom_file_service.dicom.pixels import decode_frame, frame_count, read_header
from dicom_file_service.dicom.transcode import image_params
from dicom_file_service.errors import (
    FrameOutOfRange,
    NoPixelData,
    NotAcceptable,
    ServiceError,
    UndecodablePixelData,
)

#: PS3.18 Table 8.7.3-5: the media type of a frame in each compressed transfer syntax.
_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}


def stored_frames_syntax(tsyntax: str) -> str:
    """The syntax of a file's frames as ``stored_frames`` gives them: native pixel data of
    any syntax is little-endian bytes (Explicit VR Little Endian's), compressed its own."""
    return tsyntax if tsyntax in _MEDIA_TYPES else EXPLICIT_LITTLE


def frame_media_type(tsyntax: str) -> str:
    """``application/octet-stream`` for native pixel data, else the bitstream's media type."""
    return _MEDIA_TYPES.get(tsyntax, "application/octet-stream")


def stored_frames(
    f: BinaryIO, frames: list[int], frame_table: bytes | None = None
) -> tuple[list[bytes], UID]:
    """The 1-based ``frames`` of the file ``f`` as stored, and the file's transfer syntax."""
    ds = read_header(f)
    tsyntax = transfer_syntax(ds)
    if tsyntax == DeflatedExplicitVRLittleEndian:
        raise UndecodablePixelData(
            "the file is deflated: its frames cannot be read by offset; retrieve the instance"
        )
    keyword, _vr = pixel_element_header(f, ds)
    if keyword is None:
        raise NoPixelData("the file has no Pixel Data, Float Pixel Data or Double Float Pixel Data")
    count = frame_count(ds)
    for frame in frames:
        if not 1 <= frame <= count:
            raise FrameOutOfRange(
                f"frame {frame} is out of range: the image has frames 1 to {count}"
            )
    value_at = f.tell()
    try:
        if tsyntax.is_encapsulated:
            offsets = None
            if frame_table is not None:
                half = len(frame_table) // 2
                offsets = (frame_table[:half], frame_table[half:])
            out = []
            for frame in frames:
                f.seek(value_at)
                out.append(
                    get_frame(f, frame - 1, extended_offsets=offsets, number_of_frames=count)
                )
            return out, tsyntax
        return [_native_frame(f, ds, value_at, frame, tsyntax) for frame in frames], tsyntax
    except ServiceError:
        raise
    except Exception as exc:  # a stream that does not match its attributes
        raise UndecodablePixelData(f"cannot read the frame: {type(exc).__name__}: {exc}") from exc


def transcoded_frames(
    f: BinaryIO,
    frames: list[int],
    target: str = EXPLICIT_LITTLE,
    *,
    max_pixels: int,
    max_bytes: int | None = None,
    frame_table: bytes | None = None,
) -> list[bytes]:
    """The 1-based ``frames`` decoded, colour as interleaved RGB, then as ``target`` asks:
    native little-endian bytes for Explicit VR Little Endian (PS3.18 8.7.3.3.2:
    ``application/octet-stream``), else each frame's bitstream in that compressed syntax."""
    ds = read_header(f)
    after_header = f.tell()
    params = replace(image_params(ds), has_pixels=True)  # the header stops before them
    why = None
    if target in NATIVE and target != EXPLICIT_LITTLE:
        why = "frames go as native little-endian bytes or in a compressed syntax"
    elif target != EXPLICIT_LITTLE:
        why = unencodable(target, params)
    if why is not None:
        raise NotAcceptable(f"these frames cannot be sent in {ts_name(UID(target))}: {why}")
    out = []
    for number in frames:
        f.seek(after_header)
        decoded = decode_frame(
            f, ds, number, max_pixels=max_pixels, max_bytes=max_bytes, frame_table=frame_table
        )
        pixels = decoded.pixels
        if decoded.photometric in ("YBR_FULL", "YBR_FULL_422") and pixels.ndim == 3:
            pixels = convert_color_space(pixels, "YBR_FULL", "RGB")
        if target == EXPLICIT_LITTLE:
            out.append(np.ascontiguousarray(pixels, pixels.dtype.newbyteorder("<")).tobytes())
            continue
        image = replace(params, photometric=_decoded_photometric(decoded.photometric))
        try:
            out.append(encode_frame(target, pixels, image))
        except Exception as exc:  # encoders raise anything on data they do not take
            raise UndecodablePixelData(
                f"cannot encode the frame: {type(exc).__name__}: {exc}"
            ) from exc
    return out


def _decoded_photometric(photometric: str) -> str:
    return "RGB" if photometric.startswith("YBR") else photometric


def _native_frame(f: BinaryIO, ds: object, value_at: int, frame: int, tsyntax: UID) -> bytes:
    rows, columns = int(ds.Rows), int(ds.Columns)  # type: ignore[attr-defined]
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    bits = int(ds.BitsAllocated)  # type: ignore[attr-defined]
    frame_bits = rows * columns * samples * bits
    if frame_bits % 8:
        raise UndecodablePixelData(
            "the frames are bit-packed and do not start on a byte: retrieve the instance"
        )
    length = frame_bits // 8
    f.seek(value_at + (frame - 1) * length)
    data = f.read(length)
    if len(data) != length:
        raise UndecodablePixelData("the pixel data ends before the frame does")
    if tsyntax == ExplicitVRBigEndian and bits in (16, 32, 64):
        data = np.frombuffer(data, dtype=f">u{bits // 8}").astype(f"<u{bits // 8}").tobytes()
    return data
