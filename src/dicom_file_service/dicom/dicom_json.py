"""A dataset as DICOM JSON (PS3.18 F.2), with bulk values as BulkDataURIs.

pydicom converts single elements well (``DataElement.to_json_dict``: PN components, IS/DS as
numbers, AT, InlineBinary), but its dataset-level conversion can't say *where* a bulk element
sits inside nested sequences, and would load deferred values. This walks the dataset itself:
bulk values (OB/OW/OF/OD/OL/OV/UN over 1 KiB, never loaded) get a URI naming their location,
``<prefix>/7FE00010`` at top level or ``<prefix>/00081115/0/00091001`` inside sequences, and
their lengths are returned beside the JSON.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset

from dicom_file_service.errors import TooDeeplyNested

BULK_THRESHOLD = 1024
# Deeper sequences than any IOD defines (SR content trees stay far below) are refused: the
# stored header, its encoder and every reader of it recurse once per level.
MAX_SEQUENCE_DEPTH = 64
_BULK_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW"})
# Text and numbers can be large too (RT Structure Set contour points as DS, long UT reports):
# past LARGE_VALUE they are bulk data as well, where DICOM JSON allows it (PS3.18 F.2.6), so
# no stored header carries megabytes that every tag lookup would read.
LARGE_VALUE = 64 * 1024
_BULK_ALLOWED = frozenset(
    [
        "DS",
        "FL",
        "FD",
        "IS",
        "LT",
        "OB",
        "OD",
        "OF",
        "OL",
        "OV",
        "OW",
        "SL",
        "SS",
        "ST",
        "SV",
        "UC",
        "UN",
        "UR",
        "UL",
        "US",
        "UT",
        "UV",
    ]
)
_UNDEFINED = 0xFFFFFFFF


def bulk_data_uri(base: str, location: str) -> str:
    """A bulk data location (``7FE00010``, ``00081115/0/00091001``) under ``base``; with no
    base, the location itself (what stored headers hold)."""
    return f"{base}/{location}" if base else location


def dataset_to_json(ds: Dataset, uri_prefix: str) -> tuple[dict[str, Any], dict[str, int]]:
    """(DICOM JSON object of file meta + dataset, {bulk path: byte length})."""
    out: dict[str, Any] = {}
    bulk: dict[str, int] = {}
    meta = getattr(ds, "file_meta", None)
    if isinstance(meta, Dataset):
        _convert(meta, uri_prefix, "", out, bulk)
    _convert(ds, uri_prefix, "", out, bulk)
    return out, bulk


def _vr_of(raw: Any, tag: int) -> str:
    vr = getattr(raw, "VR", None)
    if vr:
        return str(vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


# Instances of one series repeat most of their values (patient, study, series, equipment,
# geometry): a short value already converted is looked up instead of decoded again. Keyed by
# everything the conversion depends on; the elements are never changed once made (they are
# only serialised and read), so one object can stand in several headers.
_MEMO_VALUE_BYTES = 256
_MEMO_ENTRIES = 16384
_FAST_MEMO: dict[tuple[str, bytes, str | None, bool], dict[str, Any]] = {}


def _convert(
    ds: Dataset, prefix: str, path: str, out: dict[str, Any], bulk: dict[str, int]
) -> None:
    codec = _text_codec(ds)  # once per data set, not once per text element
    # The data set's own mapping, in tag order compared as plain ints: ``keys()`` +
    # ``get_item`` and BaseTag's Python-level comparisons cost a third of this loop.
    elements = ds._dict
    for tag in sorted(elements, key=int):
        if not tag & 0xFFFF and tag >> 16 != 0x0002:
            continue  # group lengths are retired and carry nothing (PS3.5 7.2)
        raw: Any = elements[tag]
        key = f"{tag:08X}"
        vr = raw.VR or _vr_of(raw, int(tag))
        length = getattr(raw, "length", None)
        if length is None and isinstance(getattr(raw, "value", None), bytes | bytearray):
            length = len(raw.value)  # already converted by pydicom: measure the value itself
        where = path + key
        if length is not None and (
            (vr in _BULK_VRS and (length == _UNDEFINED or length > BULK_THRESHOLD))
            or (vr in _BULK_ALLOWED and length != _UNDEFINED and length > LARGE_VALUE)
        ):
            json_vr = "OW" if vr in ("OB or OW", "US or OW") else vr
            uri = bulk_data_uri(prefix, where.replace(".", "/"))
            out[key] = {"vr": json_vr, "BulkDataURI": uri}
            if length != _UNDEFINED:
                bulk[where.replace(".", "/")] = int(length)
            continue
        if type(raw) is RawDataElement and tag != 0x00080005:
            value = raw.value
            memo = (
                (vr, value, codec, raw.is_little_endian)
                if type(value) is bytes and len(value) <= _MEMO_VALUE_BYTES
                else None
            )
            fast = _FAST_MEMO.get(memo) if memo is not None else None
            if fast is None:
                fast = _fast_json(raw, vr, codec)
                if fast is not None and memo is not None:
                    if len(_FAST_MEMO) >= _MEMO_ENTRIES:
                        _FAST_MEMO.clear()
                    _FAST_MEMO[memo] = fast
            if fast is not None:
                out[key] = fast
                continue
        out[key] = _element(ds, tag, prefix, where, bulk)


_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "SH", "TM", "UC", "UI"})
_SINGLE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})
_CHARSET_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT", "PN"})
_BINARY_NUMBERS = {
    "US": "H",
    "SS": "h",
    "UL": "I",
    "SL": "i",
    "FL": "f",
    "FD": "d",
    "UV": "Q",
    "SV": "q",
}
_CODECS = {
    None: "ascii",
    "": "ascii",
    "ISO_IR 6": "ascii",
    "ISO_IR 100": "latin-1",
    "ISO_IR 192": "utf-8",
}


def _text_codec(ds: Dataset) -> str | None:
    """The Python codec of the data set's (0008,0005) *Specific Character Set* where it is
    one ``_fast_json`` decodes exactly (none, ISO_IR 6/100/192), else None."""
    charset = ds.get_item(0x00080005)
    name = None
    if charset is not None:
        text = charset.value if isinstance(charset.value, str | bytes) else None
        if text is None:
            return None
        name = (text.decode("ascii", "replace") if isinstance(text, bytes) else text).strip()
    return _CODECS.get(name)


def _fast_json(raw: Any, vr: str, charset_codec: str | None) -> dict[str, Any] | None:
    """DICOM JSON straight from the raw bytes for the common VRs (PS3.18 F.2.3), or None.

    Creating a pydicom DataElement and asking it for JSON costs ~20 µs an element; a header
    has hundreds. Values this can't decode exactly (other character sets, unparseable
    numbers, binary VRs) return None and take pydicom's path.
    """
    value = raw.value
    if not isinstance(value, bytes):
        return None
    if not value:
        return {"vr": vr}
    if vr in _BINARY_NUMBERS:
        fmt = _BINARY_NUMBERS[vr]
        size = struct.calcsize(fmt)
        if len(value) % size:
            return None
        endian = "<" if raw.is_little_endian else ">"
        binary = list(struct.unpack(f"{endian}{len(value) // size}{fmt}", value))
        if vr in ("FL", "FD") and any(n != n or n in (math.inf, -math.inf) for n in binary):
            return None  # NaN and infinities have no JSON number
        return {"vr": vr, "Value": binary}
    if vr not in _TEXT_VRS and vr not in _SINGLE_TEXT_VRS and vr not in ("IS", "DS", "PN"):
        return None
    codec = "ascii"
    if vr in _CHARSET_VRS:
        if charset_codec is None:
            return None
        codec = charset_codec
    try:
        text = value.decode(codec)
    except UnicodeDecodeError:
        return None
    if vr in _SINGLE_TEXT_VRS:
        text = text.rstrip("\x00 ")
        return {"vr": vr, "Value": [text]} if text else {"vr": vr}
    parts = [p.strip("\x00 ") for p in text.split("\\")]
    if vr == "IS" or vr == "DS":
        numbers: list[Any] = []
        for p in parts:
            if not p:
                numbers.append(None)
                continue
            try:
                numbers.append(int(p) if vr == "IS" else float(p))
            except ValueError:
                return None
        if any(n is not None and (n != n or n in (math.inf, -math.inf)) for n in numbers):
            return None
        return {"vr": vr, "Value": numbers} if any(n is not None for n in numbers) else {"vr": vr}
    if vr == "PN":
        names: list[Any] = []
        for p in parts:
            groups = p.split("=")
            entry = {k: g for k, g in zip(_PN_GROUPS, groups[:3], strict=False) if g}
            names.append(entry or None)
        return {"vr": vr, "Value": names} if any(names) else {"vr": vr}
    values: list[Any] = [p if p else None for p in parts]
    return {"vr": vr, "Value": values} if any(v is not None for v in values) else {"vr": vr}


def _converted(ds: Dataset, tag: Any) -> DataElement:
    """The element's value decoded. A raw element read whole is converted directly, skipping
    ``Dataset.__getitem__``'s bookkeeping (a third of a parse); deferred values and VRs that
    need the dataset to be resolved (``US or SS``) take pydicom's full path."""
    raw = ds.get_item(tag)
    if (
        isinstance(raw, RawDataElement)
        and raw.value is not None
        and raw.VR is not None
        and " " not in raw.VR
        and int(tag) != 0x00080005
    ):
        charset = ds.original_character_set or ds._character_set
        return convert_raw_data_element(raw, encoding=charset, ds=ds)
    elem: DataElement = ds[tag]
    return elem


def _element(
    ds: Dataset, tag: Any, prefix: str, where: str, bulk: dict[str, int]
) -> dict[str, Any]:
    """An element ``_fast_json`` could not convert (``_convert`` tried it): through pydicom."""
    try:
        elem = _converted(ds, tag)
    except Exception:
        # pydicom cannot interpret the value: keep its bytes, as UN, rather than fail the file.
        raw_value = getattr(ds.get_item(tag), "value", None) or b""
        if not raw_value:
            return {"vr": "UN"}
        return {"vr": "UN", "InlineBinary": base64.b64encode(bytes(raw_value)).decode()}
    if elem.VR == "SQ":
        depth = where.count(".") // 2 + 1
        if depth > MAX_SEQUENCE_DEPTH:
            raise TooDeeplyNested(
                f"sequences nest deeper than {MAX_SEQUENCE_DEPTH} levels (at "
                f"{where[:60].replace('.', '/')}...): more than any IOD defines; not stored"
            )
        items = []
        for index, item in enumerate(elem.value or []):
            sub: dict[str, Any] = {}
            _convert(item, prefix, f"{where}.{index}.", sub, bulk)
            items.append(sub)
        return {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
    try:
        converted = elem.to_json_dict(
            bulk_data_element_handler=None, bulk_data_threshold=BULK_THRESHOLD * 1024
        )
    except Exception:
        value = elem.value
        if isinstance(value, bytes):
            return {"vr": elem.VR, "InlineBinary": base64.b64encode(value).decode()}
        text = str(value) if value not in (None, "") else ""
        return {"vr": elem.VR, "Value": [text]} if text else {"vr": elem.VR}
    return dict(converted)
