"""Reading a DICOM file's elements by their bytes, where pydicom is not asked to.

The pixel data element is never read by pydicom here (it may be gigabytes): ingest validates
its framing, bulk data retrieval finds its span, and rendering hands the file to a decoder
standing at its value. All three read the same element headers (PS3.5 7.1.1-7.1.3) and walk
the same encapsulated items (PS3.5 A.4), so that is written once, in this module, with the
small helpers every reader of a data set needs: its byte order, the transfer syntax it was
read in, its photometric interpretation, and a one-line reason for a failure.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicom_file_service.errors import InvalidDicom

PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_FLOAT_PIXEL_DATA = 0x7FE00010, 0x7FE00008, 0x7FE00009
#: (7FE0,0010) *Pixel Data*, (7FE0,0008) *Float Pixel Data*, (7FE0,0009) *Double Float ...*
PIXEL_TAGS = (PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_FLOAT_PIXEL_DATA)
PIXEL_KEYWORDS = {
    FLOAT_PIXEL_DATA: "FloatPixelData",
    DOUBLE_FLOAT_PIXEL_DATA: "DoubleFloatPixelData",
    PIXEL_DATA: "PixelData",
}
UNDEFINED = 0xFFFFFFFF
ITEM, SEQ_DELIM = 0xFFFEE000, 0xFFFEE0DD
DEFLATED = "1.2.840.10008.1.2.1.99"

# VRs whose explicit header has 2 reserved bytes and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "UT", "SQ", "UC", "UR"})
# The VRs a pixel data element may have: how its explicit VR is told from an implicit length.
_PIXEL_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"})


@dataclass(frozen=True)
class ElementHeader:
    tag: int
    vr: str | None  # None in implicit VR
    length: int
    value_at: int  # file offset of the value


def encoding(ds: Dataset) -> tuple[bool, str]:
    """(implicit VR?, struct byte-order character) of the dataset as read."""
    implicit, little = ds.original_encoding
    return bool(implicit), "<" if little is not False else ">"


def read_element_header(f: BinaryIO, pos: int, implicit: bool, endian: str) -> ElementHeader:
    """The tag, VR and length of the element at ``pos`` (PS3.5 7.1.1–7.1.3)."""
    f.seek(pos)
    head = f.read(8)
    if len(head) < 8:
        raise InvalidDicom("the file is truncated: it ends inside an element header")
    group, element = struct.unpack(endian + "HH", head[:4])
    tag = (group << 16) | element
    if implicit:
        (length,) = struct.unpack(endian + "I", head[4:8])
        return ElementHeader(tag, None, length, pos + 8)
    vr = head[4:6].decode("ascii", "replace")
    if vr in _LONG_VRS:
        more = f.read(4)
        if len(more) < 4:
            raise InvalidDicom("the file is truncated: it ends inside an element header")
        (length,) = struct.unpack(endian + "I", more)
        return ElementHeader(tag, vr, length, pos + 12)
    (length,) = struct.unpack(endian + "H", head[6:8])
    return ElementHeader(tag, vr, length, pos + 8)


def read_pixel_header(f: BinaryIO, ds: Dataset) -> ElementHeader | None:
    """The header of the pixel data element at ``f``'s position, which is left at its value;
    None (``f`` anywhere) when no pixel data element starts there.

    Whether the element has an explicit VR is read from the element itself, not from the
    transfer syntax: files exist whose dataset is implicit VR under an explicit VR transfer
    syntax, and pydicom reads them (PS3.5 7.1.2, 7.1.3 give the two layouts).
    """
    at = f.tell()
    head = f.read(8)
    if len(head) < 8:
        return None
    _implicit, endian = encoding(ds)
    group, element = struct.unpack(endian + "HH", head[:4])
    tag = (group << 16) | element
    if tag not in PIXEL_KEYWORDS:
        return None
    if head[4:6] in _PIXEL_VRS:  # explicit VR: 2 reserved bytes, then a 4-byte length
        more = f.read(4)
        if len(more) == 4:
            (length,) = struct.unpack(endian + "I", more)
            return ElementHeader(tag, head[4:6].decode("ascii"), length, at + 12)
        f.seek(at + 8)
    (length,) = struct.unpack(endian + "I", head[4:8])  # implicit VR: the length follows
    return ElementHeader(tag, None, length, at + 8)


def pixel_element_header(f: BinaryIO, ds: Dataset) -> tuple[str | None, str | None]:
    """Read the pixel data element's tag (and VR) and leave ``f`` at the start of its value:
    its pydicom keyword and its explicit VR (None in implicit VR), (None, None) if none."""
    head = read_pixel_header(f, ds)
    if head is None:
        return None, None
    return PIXEL_KEYWORDS[head.tag], head.vr


def walk_encapsulated(
    f: BinaryIO, at: int, size: int, endian: str, items: list[tuple[int, int]] | None = None
) -> int:
    """Follow the items of encapsulated pixel data from ``at`` to its Sequence Delimitation
    Item, noting each item's (position, length) in ``items``; returns the items' length."""
    pos = at
    while True:
        f.seek(pos)
        head = f.read(8) if pos + 8 <= size else b""
        if len(head) < 8:
            raise InvalidDicom(
                "the file is truncated: the encapsulated pixel data has no sequence delimiter"
            )
        group, element, length = struct.unpack(endian + "HHI", head)
        tag = (group << 16) | element
        if tag == SEQ_DELIM:
            return pos - at
        if tag != ITEM or length == UNDEFINED:
            raise InvalidDicom(
                f"the encapsulated pixel data is malformed at byte {pos}: expected an item "
                f"tag (FFFE,E000), found ({group:04X},{element:04X})"
            )
        if items is not None:
            items.append((pos, length))
        pos += 8 + length
        if pos > size:
            raise InvalidDicom(
                "the file is truncated: an encapsulated pixel data fragment runs past the end"
            )


def pixel_vr(ds: Dataset) -> str:
    """The VR of implicit VR (7FE0,0010) Pixel Data: OB up to 8 bits allocated, else OW."""
    bits = ds.get("BitsAllocated", 16)
    return "OB" if isinstance(bits, int) and bits <= 8 else "OW"


def inferred_syntax(ds: Dataset) -> UID:
    """The transfer syntax of the encoding pydicom found the dataset in."""
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian


def transfer_syntax(ds: Dataset) -> UID:
    """(0002,0010) *Transfer Syntax UID*, else the encoding pydicom found the dataset in."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return UID(str(uid))
    return inferred_syntax(ds)


def photometric(ds: Dataset) -> str:
    """(0028,0004) *Photometric Interpretation*, upper case, "" when absent."""
    return str(ds.get("PhotometricInterpretation") or "").strip().upper()


def reason(exc: BaseException, *, whole: bool = False) -> str:
    """An exception's message on one line: its first line (at most 300 characters, its type's
    name when it has none), or with ``whole`` all its lines joined (pydicom's decoders list
    each plugin's failure on a line of its own)."""
    if whole:
        return " ".join(str(exc).split())
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def ts_name(uid: UID) -> str:
    """A transfer syntax as a failure names it: its name and UID, or its UID alone."""
    name = uid.name if uid.is_valid else ""
    if name and name != str(uid):
        return f"transfer syntax {name} ({uid})"
    return f"transfer syntax {uid}"
