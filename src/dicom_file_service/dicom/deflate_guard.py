"""The guard against deflate bombs, run before pydicom is given a file at ingest.

pydicom inflates a Deflated Explicit VR Little Endian data set whole (at ingest, and again at
every render), and a few megabytes can inflate to gigabytes. So the inflated size is measured
first, in constant memory, and a file that would inflate past the limit is refused before
anything holds it.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

from pydicom.filereader import _read_file_meta_info

from dicom_file_service.dicom.elements import DEFLATED
from dicom_file_service.errors import InvalidDicom

DEFAULT_MAX_INFLATED = 64 * 1024 * 1024


_META_SCAN_BYTES = 4096
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})


def _may_name_deflated(head: bytes) -> bool:
    """Whether the file meta group at the start of ``head`` may name the deflated syntax.

    The group is walked as pydicom reads it (explicit VR little endian, up to the first
    element of another group); its Transfer Syntax UID, if found, decides. Anything this
    short walk does not follow (a group longer than ``head``, an undefined length) answers
    True: the full read decides then."""
    pos = 0
    while pos + 8 <= len(head):
        group, element = int.from_bytes(head[pos : pos + 2], "little"), head[pos + 2 : pos + 4]
        if group != 0x0002:
            return False  # the group ended without naming the deflated syntax
        vr = head[pos + 4 : pos + 6]
        if not (vr.isalpha() and vr.isupper()):
            return True  # not explicit VR (a broken meta group): the full read decides
        if vr in _LONG_VRS:
            if pos + 12 > len(head):
                return True
            length = int.from_bytes(head[pos + 8 : pos + 12], "little")
            value_at = pos + 12
        else:
            length = int.from_bytes(head[pos + 6 : pos + 8], "little")
            value_at = pos + 8
        if length == 0xFFFFFFFF or value_at + length > len(head):
            return True
        if element == b"\x10\x00":  # (0002,0010) Transfer Syntax UID
            return head[value_at : value_at + length].rstrip(b"\x00 ") == DEFLATED.encode()
        pos = value_at + length
    return pos < len(head) or len(head) == _META_SCAN_BYTES


def refuse_deflate_bombs(f: BinaryIO, size: int, limit: int) -> None:
    """Raise InvalidDicom when the deflated data set of ``f`` (``size`` bytes) inflates past
    ``limit`` bytes; a file that is not deflated passes. ``f`` is left at its start."""
    f.seek(128)
    if size < 132 or f.read(4) != b"DICM":
        f.seek(0)
        return
    if not _may_name_deflated(f.read(_META_SCAN_BYTES)):
        f.seek(0)  # the syntax is not deflated: no need to read the meta group (60 us)
        return
    f.seek(132)
    try:
        meta = _read_file_meta_info(f)
    except Exception:  # a broken meta group: the header read reports it precisely
        f.seek(0)
        return
    if str(meta.get("TransferSyntaxUID", "")) != DEFLATED:
        f.seek(0)
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated = 0
    try:
        while (chunk := f.read(1024 * 1024)) and not inflater.eof:
            while chunk and not inflater.eof:
                out = inflater.decompress(chunk, 1024 * 1024)
                inflated += len(out)
                if inflated > limit:
                    raise InvalidDicom(
                        f"the deflated data set inflates to more than {limit} bytes, the "
                        "limit (setting DICOM_FS_MAX_INFLATED_BYTES): not stored"
                    )
                if not out and inflater.unconsumed_tail == chunk:
                    break  # no progress: the stream wants what does not follow
                chunk = inflater.unconsumed_tail
    except zlib.error as exc:
        raise InvalidDicom(f"the deflated data set cannot be inflated: {exc}") from exc
    f.seek(0)
