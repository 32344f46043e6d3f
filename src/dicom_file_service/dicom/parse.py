"""Read and validate a stored DICOM file; capture its identity and its header as DICOM JSON.

The file may be gigabytes: the header is read with pydicom up to the pixel data, values larger
than 1 KiB are deferred (never loaded), and the pixel data element is validated by walking its
framing (defined length, or the items of an encapsulated sequence) without reading its value.
pydicom is lenient by design; an archive must not be: a value that runs past the end of the
file, an unterminated sequence, or a file that is not DICOM at all is refused with a precise
``InvalidDicom`` rather than stored half-readable.

This module reads and runs the steps in order; each step's rules live in a module of its own:
the deflate-bomb guard (``deflate_guard``), the framing validator (``framing``, over the byte
reader ``elements``) and the ingest policy (``ingest_policy``), whose refusal is raised here.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
from typing import Any, BinaryIO

import pydicom
from pydicom import config as pydicom_config
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian

from dicom_file_service.dicom.deflate_guard import DEFAULT_MAX_INFLATED as DEFAULT_MAX_INFLATED
from dicom_file_service.dicom.deflate_guard import refuse_deflate_bombs
from dicom_file_service.dicom.dicom_json import BULK_THRESHOLD, bulk_data_uri, dataset_to_json
from dicom_file_service.dicom.elements import (
    DEFLATED,
    PIXEL_TAGS,
    encoding,
    inferred_syntax,
    pixel_vr,
    reason,
)
from dicom_file_service.dicom.framing import (
    PixelElement,
    check_dataset_end,
    check_deferred_values,
    check_pixel_element,
    check_trailing_elements,
    header_image_attributes,
    image_attributes,
    image_without_pixels,
    padding_fault,
)
from dicom_file_service.dicom.header_scan import ScannedHeader, scan_header
from dicom_file_service.dicom.ingest_policy import ParsedInstance as ParsedInstance
from dicom_file_service.dicom.ingest_policy import judge
from dicom_file_service.errors import InvalidDicom, ServiceError


def parse_file(
    path: str | os.PathLike[str],
    *,
    bulk_data_uri_prefix: str,
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED,
) -> ParsedInstance:
    """Validate the file at ``path`` and capture what the index needs. Raises InvalidDicom.

    pydicom reads lazily, so its complaints about malformed data surface wherever an element
    is first touched: an exception raised inside pydicom becomes InvalidDicom. One raised in
    our own code is a bug of ours and is let through, so that tests (the fuzz test above all)
    find it instead of it hiding as a 422; our byte-level checks report bad bytes themselves.
    """
    try:
        return _parse(path, bulk_data_uri_prefix, max_inflated_bytes)
    except ServiceError:  # ours, and precise already
        raise
    except Exception as exc:
        if not _raised_in_pydicom(exc):
            raise
        raise InvalidDicom(f"the file cannot be parsed as DICOM: {reason(exc)}") from exc


_PYDICOM_DIR = os.path.dirname(pydicom.__file__) + os.sep


def _raised_in_pydicom(exc: BaseException) -> bool:
    """Whether the innermost Python frame of the exception is pydicom's (a C function such as
    ``struct.unpack`` or ``zlib`` called by pydicom counts as pydicom's)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename.startswith(_PYDICOM_DIR)


IN_MEMORY_BYTES = 4 * 1024 * 1024
"""Files up to this size are read whole and parsed from memory (bounded: one per parse)."""


def _parse(
    path: str | os.PathLike[str], bulk_data_uri_prefix: str, max_inflated_bytes: int
) -> ParsedInstance:
    size = os.path.getsize(path)
    # pydicom's complaints about odd values are not our errors. Its validation mode is global
    # but idempotent; ``warnings.catch_warnings`` is not thread-safe, so it is not used here.
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    with open(path, "rb") as on_disk:
        # pydicom asks its file for its position at every element, and a file's ``tell`` is
        # a system call (a quarter of a CT slice's parse); a small file is parsed from memory.
        data = on_disk.read() if size <= IN_MEMORY_BYTES else None
        f: BinaryIO = io.BytesIO(data) if data is not None else on_disk
        refuse_deflate_bombs(f, size, max_inflated_bytes)
        scanned = scan_header(data, bulk_data_uri_prefix) if data is not None else None
        if scanned is not None:
            header, bulk_lengths, pixel, padding = _framing_of_scanned(f, scanned, size)
            read_as = str(ExplicitVRLittleEndian)
        else:
            header, bulk_lengths, pixel, padding, read_as = _read_with_pydicom(
                f, size, bulk_data_uri_prefix
            )
    faults = [
        fault
        for fault in (
            image_without_pixels(header, pixel is not None),
            pixel and pixel.fault,
            padding,
        )
        if fault
    ]
    fragments: list[tuple[int, int]] = []
    if pixel is not None:
        fragments = pixel.items
        key = f"{pixel.tag:08X}"
        header[key] = {"vr": pixel.vr, "BulkDataURI": bulk_data_uri(bulk_data_uri_prefix, key)}
        bulk_lengths[key] = pixel.length
    verdict = judge(
        header,
        bulk_lengths,
        has_pixels=pixel is not None,
        read_as=read_as,
        faults=tuple(faults),
    )
    if verdict.refusal is not None:
        raise verdict.refusal
    assert verdict.instance is not None  # a verdict that refuses nothing keeps the file
    instance = verdict.instance
    table = _frame_table(fragments, instance.number_of_frames)
    return dataclasses.replace(instance, frame_table=table) if table else instance


def _read_with_pydicom(
    f: BinaryIO, size: int, bulk_data_uri_prefix: str
) -> tuple[dict[str, Any], dict[str, int], PixelElement | None, str | None, str]:
    """(header, bulk lengths, pixel element, padding fault, encoding read in) of a file the
    header scanner declined: read by pydicom, its framing checked around that reading."""
    ds = _read_header(f, size)
    pixel: PixelElement | None
    padding: str | None = None
    implicit, endian = encoding(ds)
    if _is_deflated(ds):
        ds, pixel = _read_deflated(f)
    elif f.tell() < size:
        pixel = check_pixel_element(
            f,
            size,
            implicit=implicit,
            endian=endian,
            implicit_vr=lambda: pixel_vr(ds),
            image=lambda: image_attributes(ds),
        )
        padding = check_trailing_elements(f, size, implicit, endian)
    else:
        pixel = None
        padding = check_dataset_end(f, ds, size)
    check_deferred_values(ds, size)
    try:
        header, bulk_lengths = dataset_to_json(ds, bulk_data_uri_prefix)
    except InvalidDicom:
        raise
    except Exception as exc:  # a value pydicom read but cannot convert
        raise InvalidDicom(f"the header cannot be read: {reason(exc)}") from exc
    return header, bulk_lengths, pixel, padding, str(inferred_syntax(ds))


def _framing_of_scanned(
    f: BinaryIO, scanned: ScannedHeader, size: int
) -> tuple[dict[str, Any], dict[str, int], PixelElement | None, str | None]:
    """(header, bulk lengths, pixel element, padding fault) of a file the header scanner
    read: the same checks of what follows the header as for pydicom's reading. (The scanner
    reads only Explicit VR Little Endian; every value it read lies inside the file.)"""
    header = scanned.header
    pixel: PixelElement | None = None
    padding: str | None = None
    if size - scanned.end < 8:  # where pydicom, too, stops reading: padding, if anything
        padding = padding_fault(f, scanned.end, size)
    elif scanned.at_pixels:
        f.seek(scanned.end)
        pixel = check_pixel_element(
            f,
            size,
            implicit=False,
            endian="<",
            implicit_vr=lambda: "OB",  # not asked: the VR is explicit
            image=lambda: header_image_attributes(header),
        )
        padding = check_trailing_elements(f, size, False, "<")
    return header, scanned.bulk_lengths, pixel, padding


_MAX_FRAME_TABLE = 1_000_000


def _frame_table(items: list[tuple[int, int]], frames: int) -> bytes | None:
    """Extended offsets of frames that are one fragment each (``items`` starts with the
    Basic Offset Table's item)."""
    fragments = items[1:]
    if frames < 2 or len(fragments) != frames or frames > _MAX_FRAME_TABLE:
        return None
    first = fragments[0][0]
    offsets = [pos - first for pos, _ in fragments]
    lengths = [length for _, length in fragments]
    return struct.pack(f"<{frames}Q", *offsets) + struct.pack(f"<{frames}Q", *lengths)


def _read_header(f: BinaryIO, size: int) -> Dataset:
    if size < 8:
        raise InvalidDicom(f"the file is only {size} bytes long: not a DICOM file")
    f.seek(128)
    has_preamble = size >= 132 and f.read(4) == b"DICM"
    f.seek(0)
    try:
        ds = dcmread(f, force=not has_preamble, stop_before_pixels=True, defer_size=BULK_THRESHOLD)
    except InvalidDicomError as exc:
        raise InvalidDicom(f"not a DICOM file: {reason(exc)}") from exc
    except (EOFError, struct.error) as exc:
        raise InvalidDicom("the file is truncated: it ends inside the header") from exc
    except Exception as exc:  # pydicom raises many kinds on malformed input
        raise InvalidDicom(f"the header cannot be parsed: {reason(exc)}") from exc
    if has_preamble and len(ds) == 0:
        raise InvalidDicom(
            "the file has a DICOM preamble and file meta information but no dataset after "
            "it: it is truncated"
        )
    if not has_preamble and (len(ds) == 0 or "SOPInstanceUID" not in ds):
        raise InvalidDicom(
            "not a DICOM file: no 128-byte preamble followed by 'DICM', and the bytes do not "
            "parse as a DICOM dataset"
        )
    return ds


def _is_deflated(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    return meta is not None and str(meta.get("TransferSyntaxUID", "")) == DEFLATED


def _read_deflated(f: BinaryIO) -> tuple[Dataset, PixelElement | None]:
    """Deflated files can't be read by offset: pydicom inflates them whole (they are small)."""
    f.seek(0)
    try:
        ds = dcmread(f, defer_size=None)
        for tag in PIXEL_TAGS:
            if tag in ds:
                elem = ds[tag]
                return ds, PixelElement(tag, elem.VR, len(elem.value or b""))
    except Exception as exc:  # zlib and pydicom errors on a corrupt deflated stream
        raise InvalidDicom(f"the deflated dataset cannot be inflated: {reason(exc)}") from exc
    return ds, None
