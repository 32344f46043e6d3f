"""The part of a header that describes the pixels, read without the rest.

A rendering or a frame needs the file meta and the attributes of groups (0028) *Image Pixel*
and *Presentation* on: (0028) for the pixel module, the LUTs and the windows, (2050) for the
Presentation LUT, (5200) for the functional groups, (7FE0) for the offset tables. What comes
before group (0028) (patient, study, series, equipment, and often hundreds of private
elements) describes nothing a pixel pipeline reads, and pydicom spends about 1.7 µs an
element reading it (CT_small: 190 of its 258 elements, a fifth of its first PNG's time).

For a data set encoded as Explicit VR Little Endian (the native syntax and every compressed
one; the syntax is read off the file meta's bytes first, since pydicom inflates a deflated
data set whole as it reads the meta) those elements are skipped by a scan of their headers
alone, sequences of undefined length walked item by item, and pydicom reads the rest as
``dcmread`` would, up to the pixel data. Whatever the scan cannot skip with certainty
(another encoding, a value of undefined length that is not a sequence, lengths past the end,
nesting deeper than any IOD uses) makes it give up, and the caller reads the whole header
through pydicom.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from pydicom.dataset import FileDataset
from pydicom.filereader import read_dataset, read_partial

from dicom_file_service.dicom.header_scan import EXPLICIT_LITTLE_SYNTAXES

_FIRST_GROUP = 0x0028
_CHUNK = 4 * 1024  # most headers in one or two reads; never much of the pixel data
_META_PEEK = 1024  # the preamble and a file meta of common size
_MAX_LEVELS = 2 * 64  # a sequence and its item a level, 64 deep: ingest refuses deeper
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
# PS3.5 7.1.2: the VRs whose explicit encoding has two reserved bytes and a 32-bit length.
_LONG_VRS = frozenset(
    vr.encode()
    for vr in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV")
)
_ELEMENT = struct.Struct("<HH2sH")
_TAG_LENGTH = struct.Struct("<HHL")
_LENGTH = struct.Struct("<L")


_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})


def _at_pixel_data(tag: int, vr: str | None, length: int) -> bool:
    return tag in _PIXEL_TAGS


def _first_element(tag: int, vr: str | None, length: int) -> bool:
    return True


class _Giveup(Exception):
    """The scan met what it does not skip with certainty."""


class _Cursor:
    """Reads ``f`` a chunk at a time; ``pos`` is a position in the file."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.pos = f.tell()
        self.base = self.pos
        self.buf = b""

    def take(self, n: int) -> bytes:
        at = self.pos - self.base
        if at < 0 or at + n > len(self.buf):
            self.f.seek(self.pos)
            self.base, self.buf = self.pos, self.f.read(max(n, _CHUNK))
            at = 0
            if len(self.buf) < n:
                raise _Giveup
        self.pos += n
        return self.buf[at : at + n]


def read_pixel_header(f: BinaryIO) -> FileDataset | None:
    """The file meta and the data set from group (0028) to the pixel data, ``f`` left at the
    pixel data element's tag; or None, ``f`` anywhere: read the whole header instead."""
    start = f.tell()
    declared = _declared_syntax(f.read(_META_PEEK))
    if declared not in EXPLICIT_LITTLE_SYNTAXES:  # pydicom would inflate a deflated one here
        return None
    f.seek(start)
    try:
        meta_only = read_partial(f, _first_element, force=True)
    except Exception:  # the caller's whole read names what is wrong
        return None
    if (
        meta_only.file_meta.get("TransferSyntaxUID") != declared  # pydicom read another meta
        or meta_only.is_implicit_VR is not False
        or meta_only.is_little_endian is not True
        or len(meta_only) != 0  # a command set
    ):
        return None
    cursor = _Cursor(f)
    try:
        _skip_to_first_group(cursor)
    except (_Giveup, struct.error):
        return None
    f.seek(cursor.pos)
    try:
        data_set = read_dataset(f, False, True, stop_when=_at_pixel_data, defer_size=64 * 1024)
    except Exception:
        return None
    ds = FileDataset(f, data_set, meta_only.preamble, meta_only.file_meta, False, True)
    ds.set_original_encoding(False, True, data_set._character_set)
    return ds


def _declared_syntax(head: bytes) -> str | None:
    """The Transfer Syntax UID a Part 10 file's meta declares, read off its first bytes (the
    meta is always Explicit VR Little Endian); None where there is none to read there."""
    if head[128:132] != b"DICM":
        return None
    at = 132
    while at + 12 <= len(head):
        group, element, vr, short = _ELEMENT.unpack_from(head, at)
        if group != 0x0002:
            return None
        length, value_at = short, at + 8
        if vr in _LONG_VRS:
            (length,) = _LENGTH.unpack_from(head, at + 8)
            value_at = at + 12
        if element == 0x0010:
            return head[value_at : value_at + length].rstrip(b"\0 ").decode("ascii", "replace")
        at = value_at + length
    return None


def _skip_to_first_group(cursor: _Cursor) -> None:
    """Move ``cursor`` to the first top-level element of group (0028) or later (a data set
    without one, rare, is read whole)."""
    in_item: list[bool] = []  # per open level of undefined length: an item, or a sequence
    while True:
        if not in_item:
            if _skip_at_hand(cursor):
                return
            at = cursor.pos
            group, element, vr, short = _ELEMENT.unpack(cursor.take(8))
            if group >= _FIRST_GROUP:
                cursor.pos = at
                return
            _skip_value(cursor, (group << 16) | element, vr, short, in_item)
            continue
        if in_item[-1]:  # inside an item: elements, or its end
            group, element, vr, short = _ELEMENT.unpack(cursor.take(8))
            tag = (group << 16) | element
            if tag == _ITEM_END:
                if vr != b"\0\0" or short != 0:
                    raise _Giveup
                in_item.pop()
                continue
            _skip_value(cursor, tag, vr, short, in_item)
            continue
        group, element, length = _TAG_LENGTH.unpack(cursor.take(8))  # inside a sequence
        tag = (group << 16) | element
        if tag == _SEQUENCE_END:
            in_item.pop()
        elif tag != _ITEM:
            raise _Giveup
        elif length == _UNDEFINED:
            if len(in_item) >= _MAX_LEVELS:
                raise _Giveup
            in_item.append(True)
        else:
            cursor.pos += length


def _skip_at_hand(cursor: _Cursor) -> bool:
    """The common case, fast: top-level elements of defined length in the chunk read
    already. True at the first of group (0028) on; False where the general walk must take
    a step (a value of undefined length, the chunk's end, anything unusual)."""
    buf, base = cursor.buf, cursor.base
    at, last = cursor.pos - base, len(buf) - 12
    unpack, unpack_length, long_vrs = _ELEMENT.unpack_from, _LENGTH.unpack_from, _LONG_VRS
    while 0 <= at <= last:
        group, _element, vr, short = unpack(buf, at)
        if group >= _FIRST_GROUP:
            cursor.pos = base + at
            return True
        if vr in long_vrs:
            (length,) = unpack_length(buf, at + 8)
            if short or length == _UNDEFINED:
                break
            at += 12 + length
        elif group != 0xFFFE and b"AA" <= vr <= b"ZZ":
            at += 8 + short
        else:
            break
    cursor.pos = base + at
    return False


def _skip_value(cursor: _Cursor, tag: int, vr: bytes, short: int, in_item: list[bool]) -> None:
    """Past the value of the element whose first 8 bytes were read."""
    if tag >> 16 == 0xFFFE or not (b"AA" <= vr <= b"ZZ"):
        raise _Giveup  # a delimiter out of place, or not explicit VR after all
    if vr not in _LONG_VRS:
        cursor.pos += short
        return
    if short != 0:
        raise _Giveup
    (length,) = _LENGTH.unpack(cursor.take(4))
    if length != _UNDEFINED:
        cursor.pos += length
    elif vr == b"SQ" and len(in_item) < _MAX_LEVELS:
        in_item.append(False)
    else:
        raise _Giveup  # undefined length of another VR (UN, encapsulated): pydicom's to read
