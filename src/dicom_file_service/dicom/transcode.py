"""Transcoding to Explicit VR Little Endian, the default of WADO-RS (PS3.18 8.7.3.5.2).

A client that asks for ``application/dicom`` without ``transfer-syntax=*`` (or names
1.2.840.10008.1.2.1) gets every instance in Explicit VR Little Endian: compressed pixel data
decoded (pydicom's decoders, as the renderer uses), implicit VR made explicit, deflate
inflated, big endian swapped (pydicom writes numbers in the new order, the word-valued byte
strings are swapped here, and native pixel data by its own sample width). The whole instance is
decoded in memory, so its decoded size is bounded first.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

from dicom_file_service.dicom.elements import PIXEL_DATA, transfer_syntax
from dicom_file_service.dicom.pixels import frame_count
from dicom_file_service.dicom.stored import vanished
from dicom_file_service.errors import (
    ImageTooLarge,
    ServiceError,
    UndecodablePixelData,
)

EXPLICIT_LITTLE = str(ExplicitVRLittleEndian)
_WORDS = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def to_explicit_little_endian(f: BinaryIO, *, max_bytes: int) -> bytes:
    """The DICOM file ``f`` as a Part 10 file in Explicit VR Little Endian."""
    try:
        ds = dcmread(f, force=True)
        tsyntax = transfer_syntax(ds)
        if tsyntax == ExplicitVRLittleEndian:
            f.seek(0)
            return f.read()
        _check_size(ds, max_bytes)
        if tsyntax.is_compressed:
            ds.decompress(generate_instance_uid=False)
        elif tsyntax == ExplicitVRBigEndian:
            _swap_to_little(ds)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        if getattr(ds, "preamble", None) is None:
            ds.preamble = b"\0" * 128
        out = io.BytesIO()
        dcmwrite(out, ds, implicit_vr=False, little_endian=True, force_encoding=True)
        return out.getvalue()
    except OSError as exc:  # pydicom reopens a file by name for deferred values
        raise vanished(
            exc, UndecodablePixelData(f"cannot transcode to Explicit VR Little Endian: {exc}")
        ) from exc
    except ServiceError:
        raise
    except Exception as exc:  # decoders and writers raise anything on odd data
        raise UndecodablePixelData(
            f"cannot transcode to Explicit VR Little Endian: {type(exc).__name__}: {exc}"
        ) from exc


def _check_size(ds: Dataset, max_bytes: int) -> None:
    if "PixelData" not in ds:
        return
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 8) or 8)
    size = int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * samples
    size = size * frame_count(ds) * max(bits, 8) // 8
    if size > max_bytes:
        raise ImageTooLarge(
            f"decoding this instance takes {size} bytes, over the limit of {max_bytes}: "
            "retrieve it as stored (transfer-syntax=*)"
        )


def _swap_to_little(ds: Dataset) -> None:
    """Word-valued byte strings from big to little endian; native pixel data by its own
    sample width (32-bit pixels in an OW element are not 16-bit words)."""
    if "PixelData" in ds:
        pixels = ds.pixel_array
        ds.PixelData = np.ascontiguousarray(pixels, pixels.dtype.newbyteorder("<")).tobytes()
        ds["PixelData"].VR = "OW" if int(ds.BitsAllocated) > 8 else "OB"
        if int(ds.get("SamplesPerPixel", 1) or 1) > 1:
            ds.PlanarConfiguration = 0  # pixel_array interleaves the samples
    for element in ds.iterall():
        width = _WORDS.get(element.VR)
        if element.tag == PIXEL_DATA or width is None:
            continue
        if isinstance(element.value, bytes) and len(element.value) % width == 0:
            words = np.frombuffer(element.value, dtype=f">u{width}")
            element.value = words.astype(f"<u{width}").tobytes()
