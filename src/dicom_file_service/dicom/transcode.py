"""An instance rewritten in another transfer syntax, for retrieval (PS3.18 8.7.3.4, 8.2.11).

The pixel data is decoded with pydicom's decoders (as the renderer does), colour as RGB, and
encoded again in the target syntax frame by frame (``encoders``); the rest of the data set is
re-encoded as the target syntax says (implicit VR made explicit, deflate inflated, big endian
swapped: pydicom writes numbers in the new order, word-valued byte strings are swapped here,
and native pixel data by its own sample width). The file meta is written again: the new
Transfer Syntax UID and group length, the Media Storage SOP Class and Instance UIDs kept.
Lossy targets add (0028,2110) *Lossy Image Compression* "01" and append their ratio and method
(PS3.3 C.7.6.1.1.5). The whole instance is decoded in memory, so its decoded size is bounded
before anything is decoded.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.filewriter import dcmwrite
from pydicom.pixels.processing import convert_color_space
from pydicom.uid import UID, ExplicitVRBigEndian

from dicom_file_service.dicom.elements import PIXEL_DATA, transfer_syntax, ts_name
from dicom_file_service.dicom.encoders import (
    EXPLICIT_LITTLE,
    NATIVE,
    TARGETS,
    ImageParams,
    encode_frame,
    encoded_photometric,
    unencodable,
)
from dicom_file_service.dicom.pixels import frame_count
from dicom_file_service.dicom.stored import vanished
from dicom_file_service.errors import (
    ImageTooLarge,
    NotAcceptable,
    ServiceError,
    UndecodablePixelData,
)

__all__ = ["EXPLICIT_LITTLE", "image_params", "stored_image_params", "transcode"]

_WORDS = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
_YBR = ("YBR_FULL", "YBR_FULL_422")


def transcode(f: BinaryIO, target: str, *, max_bytes: int) -> bytes:
    """The DICOM file ``f`` as a Part 10 file in the transfer syntax ``target``.

    ``NotAcceptable`` if no encoder takes this image in ``target``; ``ImageTooLarge`` past
    ``max_bytes`` of decoded pixel data; ``UndecodablePixelData`` if it cannot be decoded."""
    try:
        ds = dcmread(f, force=True)
        source = transfer_syntax(ds)
        if source == target:
            f.seek(0)
            return f.read()
        image = image_params(ds)
        why = unencodable(target, image)
        if why is not None:
            raise NotAcceptable(
                f"instance {ds.get('SOPInstanceUID', '')} cannot be sent in "
                f"{ts_name(UID(target))}: {why}"
            )
        if image.has_pixels:
            _check_size(ds, max_bytes)
            if source.is_compressed:
                ds.decompress(generate_instance_uid=False)
        if source == ExplicitVRBigEndian:
            _swap_to_little(ds)
            ds.file_meta.TransferSyntaxUID = UID(EXPLICIT_LITTLE)  # as the pixels now are
        if image.has_pixels and target not in NATIVE and "PixelData" in ds:
            _encapsulate(ds, target)
        return _written(ds, target)
    except OSError as exc:  # pydicom reopens a file by name for deferred values
        raise vanished(exc, UndecodablePixelData(f"cannot transcode: {exc}")) from exc
    except ServiceError:
        raise
    except Exception as exc:  # decoders, encoders and writers raise anything on odd data
        raise UndecodablePixelData(
            f"cannot transcode to {target}: {type(exc).__name__}: {exc}"
        ) from exc


def image_params(ds: Dataset) -> ImageParams:
    """The attributes of a data set's Image Pixel module that decide its encoders."""
    return ImageParams(
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
        samples=int(ds.get("SamplesPerPixel", 1) or 1),
        bits_allocated=int(ds.get("BitsAllocated", 8) or 8),
        bits_stored=int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8),
        signed=int(ds.get("PixelRepresentation", 0) or 0) == 1,
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2") or ""),
        has_pixels=any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")),
        float_pixels="PixelData" not in ds
        and any(k in ds for k in ("FloatPixelData", "DoubleFloatPixelData")),
    )


def stored_image_params(header: dict[str, Any]) -> ImageParams:
    """The same attributes from a header as stored at ingest (DICOM JSON), so whether an
    instance can go in a syntax is known without reading its file."""

    def number(tag: str, default: int) -> int:
        values = header.get(tag, {}).get("Value") or [default]
        return int(values[0]) if isinstance(values[0], int | float | str) else default

    photometric = (header.get("00280004", {}).get("Value") or ["MONOCHROME2"])[0]
    floats = "7FE00008" in header or "7FE00009" in header
    return ImageParams(
        rows=number("00280010", 0),
        columns=number("00280011", 0),
        samples=number("00280002", 1),
        bits_allocated=number("00280100", 8),
        bits_stored=number("00280101", number("00280100", 8)),
        signed=number("00280103", 0) == 1,
        photometric=str(photometric),
        has_pixels="7FE00010" in header or floats,
        float_pixels=floats and "7FE00010" not in header,
    )


def _check_size(ds: Dataset, max_bytes: int) -> None:
    if "PixelData" not in ds:
        return
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 8) or 8)
    size = int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * samples
    size = size * frame_count(ds) * max(bits, 8) // 8
    if size > max_bytes:
        raise ImageTooLarge(
            f"decoding this instance takes {size} bytes, over the limit of {max_bytes} "
            "(setting DICOM_FS_MAX_TRANSCODE_BYTES): retrieve it as stored (transfer-syntax=*)"
        )


def _encapsulate(ds: Dataset, target: str) -> None:
    """Native pixel data (decoded already) encoded frame by frame in ``target``."""
    image = image_params(ds)  # as decoded: a decoder may have made YCbCr RGB
    pixels = ds.pixel_array
    count = frame_count(ds)
    frames = pixels if count > 1 else pixels[np.newaxis]
    if image.samples == 3 and str(ds.PhotometricInterpretation) in _YBR:
        frames = convert_color_space(frames, "YBR_FULL", "RGB")  # pixel_array: full YBR
        image = replace(image, photometric="RGB")
    uncompressed = frames.size * max(image.bits_allocated, 8) // 8
    encoded = [encode_frame(target, frame, image) for frame in frames]
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            del ds[keyword]
    if sum(len(e) + 8 for e in encoded) > 0xFFFFFFFF:
        ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(
            encoded
        )
    else:
        ds.PixelData = encapsulate(encoded, has_bot=count > 1)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.PhotometricInterpretation = encoded_photometric(target, image)
    if image.samples == 3:
        ds.PlanarConfiguration = 0
    if TARGETS[target].lossy:
        _mark_lossy(ds, target, uncompressed / max(1, sum(len(e) for e in encoded)))


def _mark_lossy(ds: Dataset, target: str, ratio: float) -> None:
    """PS3.3 C.7.6.1.1.5: once lossy, always "01"; each lossy step appends its ratio and
    its method, in the order applied."""
    ds.LossyImageCompression = "01"
    ratios = [str(r) for r in _values(ds.get("LossyImageCompressionRatio"))]
    methods = [str(m) for m in _values(ds.get("LossyImageCompressionMethod"))]
    ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.2f}"]
    ds.LossyImageCompressionMethod = [*methods, TARGETS[target].method]


def _values(value: Any) -> list[Any]:
    """An attribute's values as a list: none, one, or a pydicom MultiValue's."""
    if value is None or value == "":
        return []
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return [value]


def _written(ds: Dataset, target: str) -> bytes:
    """The data set as a Part 10 file in ``target``, its file meta rebuilt around the new
    Transfer Syntax UID (pydicom recomputes the group length)."""
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta.TransferSyntaxUID = UID(target)
    if "MediaStorageSOPClassUID" not in meta and "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in meta and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "FileMetaInformationGroupLength" in meta:
        del meta.FileMetaInformationGroupLength
    ds.file_meta = meta
    if getattr(ds, "preamble", None) is None:
        ds.preamble = b"\0" * 128
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)  # encoded as the Transfer Syntax UID says
    return out.getvalue()


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
