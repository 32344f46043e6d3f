"""Where a bulk data value lies in a stored file, so that it is streamed, never held whole.

A BulkDataURI names an element by location (``7FE00010``, ``00081115/0/00091001``). Its value
is a contiguous run of the file's bytes: found from the header (read with large values
deferred) for elements in the data set or in sequence items, and from the element's own header
for pixel data, which is never read (for encapsulated pixel data, its items are walked to the
Sequence Delimitation Item). Only a deflated file, which cannot be read by offset, gives its
value as bytes: its inflated size was bounded at ingest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO

from pydicom import config as pydicom_config
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from dicom_file_service.dicom.dicom_json import BULK_THRESHOLD
from dicom_file_service.dicom.elements import (
    DEFLATED,
    PIXEL_TAGS,
    UNDEFINED,
    encoding,
    read_pixel_header,
    walk_encapsulated,
)
from dicom_file_service.dicom.stored import vanished
from dicom_file_service.errors import InvalidDicom, ServiceError, TagNotFound

_HEX8 = re.compile(r"^[0-9A-F]{8}$")


@dataclass(frozen=True)
class BulkSpan:
    """The value's bytes are ``length`` bytes of the stored file from ``offset``."""

    offset: int
    length: int


def locate_bulk_value(source: BinaryIO, location: str, size: int) -> BulkSpan | bytes:
    """The span of the value at a bulk location of the file ``source`` of ``size`` bytes
    (bytes instead for a deflated file). Raises TagNotFound when the location names no bulk
    value of the file."""
    steps = location.upper().split("/")
    if len(steps) % 2 != 1 or not all(_HEX8.match(s) for s in steps[0::2]):
        raise TagNotFound(f"{location!r} is not a bulk data location of this file")
    if not all(s.isdigit() for s in steps[1::2]):
        raise TagNotFound(f"{location!r} is not a bulk data location of this file")
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    try:
        ds = dcmread(source, force=True, stop_before_pixels=True, defer_size=BULK_THRESHOLD)
        if str(getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID", "")) == DEFLATED:
            return _inflated_value(source, steps)
        tag = int(steps[-1], 16)
        if len(steps) == 1 and tag in PIXEL_TAGS:
            return _pixel_span(source, ds, tag, size)
        dataset, base = ds, 0
        for tag_hex, index in zip(steps[0:-1:2], steps[1::2], strict=True):
            sequence = dataset.get_item(int(tag_hex, 16), keep_deferred=True)
            if isinstance(sequence, RawDataElement):
                # Read from its own bytes when first touched: the positions of what lies in
                # it are counted from the start of its value.
                base += sequence.value_tell
            dataset = dataset[int(tag_hex, 16)].value[int(index)]
        raw = dataset.get_item(tag, keep_deferred=True)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise TagNotFound(f"the file has no bulk data at {location!r}") from exc
    except OSError as exc:  # pydicom reopens a file by name for deferred values
        raise vanished(exc, InvalidDicom(f"the stored file cannot be read: {exc}")) from exc
    except ServiceError:  # the store failed beneath the reader: not the file's fault
        raise
    except Exception as exc:  # the stored file was validated at ingest; be safe anyway
        raise InvalidDicom(f"the stored file cannot be read: {exc}") from exc
    if raw is None:
        raise TagNotFound(f"the file has no bulk data at {location!r}")
    if isinstance(raw, RawDataElement) and raw.length != UNDEFINED and raw.value_tell:
        return BulkSpan(base + raw.value_tell, raw.length)
    value = dataset[tag].value
    if not isinstance(value, bytes | bytearray):
        raise TagNotFound(f"the element at {location!r} is not bulk data")
    return bytes(value)


def _pixel_span(f: BinaryIO, ds: Dataset, tag: int, size: int) -> BulkSpan:
    """From the pixel data element's own header (``f`` stands at its tag)."""
    head = read_pixel_header(f, ds)
    if head is None or head.tag != tag:
        raise TagNotFound(f"the file has no bulk data at {tag:08X}")
    offset, length = head.value_at, head.length
    if length != UNDEFINED:
        return BulkSpan(offset, min(length, max(size - offset, 0)))
    try:  # the items of encapsulated pixel data, to their delimiter
        walked = walk_encapsulated(f, offset, size, encoding(ds)[1])
    except InvalidDicom as exc:
        raise InvalidDicom("the stored file's encapsulated pixel data has no end") from exc
    return BulkSpan(offset, walked)


def _inflated_value(source: BinaryIO, steps: list[str]) -> bytes:
    source.seek(0)
    dataset: Dataset = dcmread(source, force=True)
    for tag_hex, index in zip(steps[0:-1:2], steps[1::2], strict=True):
        dataset = dataset[int(tag_hex, 16)].value[int(index)]
    value = dataset[int(steps[-1], 16)].value
    if not isinstance(value, bytes | bytearray):
        raise TagNotFound(f"the element at {'/'.join(steps)!r} is not bulk data")
    return bytes(value)
