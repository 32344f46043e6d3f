"""Part 10 files (PS3.10 7.1) around data sets that arrive without one: a C-STORE's data set.

A data set received over the DICOM network has no file meta: the File Meta Information is
made here from what the association negotiated (the presentation context's transfer syntax,
the request's Affected SOP Class and Instance UIDs, the calling AE title as (0002,0016)
*Source Application Entity Title*), and the data set's bytes follow it unchanged. A data set
sent in Deflated Explicit VR Little Endian is kept inflated, as Explicit VR Little Endian:
what it says, once, rather than a stream every later reader must inflate again; the
inflated size is bounded as the ingest bounds it (a deflate bomb is refused, not stored).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from dicom_file_service.dicom.elements import DEFLATED, read_element_header
from dicom_file_service.dicom.json_data_set import encode_attributes
from dicom_file_service.errors import InvalidDicom

EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
IMPLEMENTATION_CLASS_UID = "2.25.16157444563841848634937567167693914817"
"""Ours (PS3.7 D.3.3.2), a UUID-derived UID (PS3.5 B.2): who wrote a file meta or answered
an association."""
IMPLEMENTATION_VERSION_NAME = "DICOMFS_1"
PREAMBLE = b"\x00" * 128 + b"DICM"


def file_meta(
    sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str, source_ae_title: str | None
) -> bytes:
    """The preamble, prefix and File Meta Information group of a file of this instance.

    Written here rather than by pydicom's ``write_file_meta_info`` (a tenth of a received
    C-STORE's time, for eight elements): the group is Explicit VR Little Endian text but for
    its version and length, and a test compares the bytes with pydicom's.
    """
    attributes = {
        "00020002": {"vr": "UI", "Value": [sop_class_uid]},
        "00020003": {"vr": "UI", "Value": [sop_instance_uid]},
        "00020010": {"vr": "UI", "Value": [transfer_syntax]},
        "00020012": {"vr": "UI", "Value": [IMPLEMENTATION_CLASS_UID]},
        "00020013": {"vr": "SH", "Value": [IMPLEMENTATION_VERSION_NAME]},
    }
    title = (source_ae_title or "").strip()
    if title:
        attributes["00020016"] = {"vr": "AE", "Value": [title]}
    group = _META_VERSION + encode_attributes(attributes, implicit_vr=False)
    return PREAMBLE + _META_LENGTH + struct.pack("<I", len(group)) + group


_META_LENGTH = b"\x02\x00\x00\x00UL\x04\x00"  # (0002,0000) UL, 4 bytes
_META_VERSION = b"\x02\x00\x01\x00OB\x00\x00\x02\x00\x00\x00\x00\x01"  # (0002,0001) 00 01


def stored_syntax(received: str) -> str:
    """The transfer syntax a received data set is kept in: as received, deflated inflated."""
    return EXPLICIT_LITTLE if received == DEFLATED else received


def data_set_chunks(
    f: BinaryIO, received: str, *, max_inflated: int, chunk: int = 1024 * 1024
) -> Iterator[bytes]:
    """The data set's bytes from ``f`` (positioned at its first byte) as they are kept:
    unchanged, or inflated (at most ``max_inflated`` bytes) when it came deflated."""
    raw = iter(lambda: f.read(chunk), b"")
    if received != DEFLATED:
        yield from raw
        return
    yield from _inflated(raw, max_inflated, chunk)


def _inflated(raw: Iterable[bytes], limit: int, chunk: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # PS3.5 A.5: raw deflate, no header
    total = 0
    try:
        for block in raw:
            pending = block
            while pending and not inflater.eof:
                out = inflater.decompress(pending, chunk)
                total += len(out)
                if total > limit:
                    raise InvalidDicom(
                        f"the deflated data set inflates to more than {limit} bytes, the "
                        "limit (setting DICOM_FS_MAX_INFLATED_BYTES): not stored"
                    )
                if out:
                    yield out
                if not out and inflater.unconsumed_tail == pending:
                    break
                pending = inflater.unconsumed_tail
        tail = inflater.flush()
    except zlib.error as exc:
        raise InvalidDicom(f"the deflated data set cannot be inflated: {exc}") from exc
    total += len(tail)
    if total > limit:
        raise InvalidDicom(f"the deflated data set inflates to more than {limit} bytes")
    if tail:
        yield tail
    if not inflater.eof:
        raise InvalidDicom("the deflated data set ends before its deflate stream does")


def data_set_offset(f: BinaryIO) -> int:
    """Where the data set of the file ``f`` begins: after the preamble and the File Meta
    Information group (always Explicit VR Little Endian, PS3.10 7.1), or 0 for a file without
    either. ``f`` is left where it was found."""
    start = f.tell()
    try:
        f.seek(0)
        if f.read(132)[128:] != b"DICM":
            return 0
        pos = 132
        while True:
            try:
                element = read_element_header(f, pos, False, "<")
            except InvalidDicom:  # the file ends after its file meta
                return pos
            if element.tag >> 16 != 0x0002:
                return pos
            pos = element.value_at + element.length
    finally:
        f.seek(start)
