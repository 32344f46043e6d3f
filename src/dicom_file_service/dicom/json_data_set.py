"""DICOM JSON attributes written as a Little Endian data set (PS3.5 7.1, PS3.18 F.2).

A C-FIND answers each match with an identifier: a handful of attributes the index already
holds as DICOM JSON. Building a pydicom ``Dataset`` from that JSON and writing it costs about a
millisecond an answer in Python (value conversion and validation, then the writer's dispatch
per element), more than the search itself; a 1,000-answer query took a second. The attributes
an identifier asks for are nearly all text (names, dates, UIDs, codes), whose encoding is the
value's characters joined by backslashes and padded to even length: that is written here
directly. Every other value (numbers, sequences, binary, a decimal string's formatting) goes
through pydicom, one element at a time, so the bytes are pydicom's in every case; a test
compares the two writers on every kind of value.

Text is written in UTF-8: the caller says ``ISO_IR 192`` in (0008,0005) when any value is not
ASCII (``non_ascii`` tells), as PS3.5 6.1.2.3 asks.
"""

from __future__ import annotations

import functools
import logging
import struct
from typing import Any

import orjson
from pydicom import config as pydicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element

log = logging.getLogger(__name__)

_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
_LONG_HEADER_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
_TAG = struct.Struct("<HH")
_LONG_LENGTH = struct.Struct("<I")
_SHORT_LENGTH = struct.Struct("<H")


def non_ascii(attributes: dict[str, Any]) -> bool:
    """Whether any value, at any depth, has a character outside ASCII."""
    return not orjson.dumps(attributes).isascii()


def encode_attributes(attributes: dict[str, Any], *, implicit_vr: bool) -> bytes:
    """The data set of ``attributes`` (DICOM JSON keyed by tag, in any order), in Implicit or
    Explicit VR Little Endian."""
    parts = []
    for key in sorted(attributes):
        attribute = attributes[key]
        vr = attribute.get("vr", "UN")
        text = _text(vr, attribute)
        if text is None:
            parts.append(_through_pydicom(key, vr, attribute, implicit_vr))
            continue
        value = text.encode("utf-8")
        if len(value) % 2:
            value += b"\x00" if vr == "UI" else b" "
        prefix, length = _prefix(key, vr, implicit_vr)
        parts += (prefix, length.pack(len(value)), value)
    return b"".join(parts)


@functools.lru_cache(maxsize=4096)
def _prefix(key: str, vr: str, implicit_vr: bool) -> tuple[bytes, struct.Struct]:
    """An element's header before its length (tag, and VR when explicit), and how its length
    is written."""
    tag = int(key, 16)
    head = _TAG.pack(tag >> 16, tag & 0xFFFF)
    if implicit_vr:
        return head, _LONG_LENGTH
    if vr in _LONG_HEADER_VRS:
        return head + vr.encode() + b"\x00\x00", _LONG_LENGTH
    return head + vr.encode(), _SHORT_LENGTH


def _text(vr: str, attribute: dict[str, Any]) -> str | None:
    """The value as the element holds it, for a text VR (and an IS of whole numbers);
    ``None`` for what pydicom writes."""
    values = attribute.get("Value")
    if vr == "IS":
        if values is None:
            return ""
        if not all(type(v) is int for v in values):
            return None
        return "\\".join(str(v) for v in values)
    if vr not in _TEXT_VRS:
        return None
    if values is None:
        return ""
    if vr == "PN":
        return "\\".join(_person_name(v) for v in values)
    if not all(v is None or isinstance(v, str) for v in values):
        return None
    text = "\\".join(v or "" for v in values)
    return text if len(text) < 0xFFFF or vr in _LONG_HEADER_VRS else None


def _person_name(value: Any) -> str:
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    groups = (value.get("Alphabetic", ""), value.get("Ideographic", ""), value.get("Phonetic", ""))
    return "=".join(groups).rstrip("=")


def _through_pydicom(key: str, vr: str, attribute: dict[str, Any], implicit_vr: bool) -> bytes:
    """One element as pydicom writes it from its JSON; empty (zero length) when pydicom cannot
    make or write it (a bulk data reference, a value its VR cannot hold), said in the log."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit_vr
    # pydicom's doubts about a stored value (an over-long UID) are not ours to answer here.
    # Its validation mode is global but idempotent (``warnings.catch_warnings`` is not
    # thread-safe), as where files are parsed.
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    try:
        value_key = next(
            (k for k in ("Value", "InlineBinary", "BulkDataURI") if k in attribute), None
        )
        if value_key == "BulkDataURI":
            raise ValueError("a bulk data value is not answered")
        element = DataElement.from_json(
            Dataset, key, vr, attribute.get(value_key) if value_key else None, value_key
        )
        write_data_element(fp, element, ["ISO_IR 192"])
    except Exception as exc:  # any value pydicom refuses is written empty
        log.info("(%s,%s) written empty: %s", key[:4], key[4:], exc)
        prefix, length = _prefix(key, vr, implicit_vr)
        return prefix + length.pack(0)
    return bytes(fp.getvalue())
