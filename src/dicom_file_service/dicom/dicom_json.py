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
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset

BULK_THRESHOLD = 1024
_BULK_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW"})
_UNDEFINED = 0xFFFFFFFF


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


def _convert(
    ds: Dataset, prefix: str, path: str, out: dict[str, Any], bulk: dict[str, int]
) -> None:
    for tag in sorted(ds.keys()):
        key = f"{int(tag):08X}"
        if key.endswith("0000") and not key.startswith("0002"):
            continue  # group lengths are retired and carry nothing (PS3.5 7.2)
        raw = ds.get_item(tag)
        vr = _vr_of(raw, int(tag))
        length = getattr(raw, "length", None)
        if length is None and isinstance(getattr(raw, "value", None), bytes | bytearray):
            length = len(raw.value)  # already converted by pydicom: measure the value itself
        where = f"{path}{key}"
        if (
            vr in _BULK_VRS
            and length is not None
            and (length == _UNDEFINED or length > BULK_THRESHOLD)
        ):
            json_vr = "OW" if vr in ("OB or OW", "US or OW") else vr
            out[key] = {"vr": json_vr, "BulkDataURI": f"{prefix}/{where.replace('.', '/')}"}
            if length != _UNDEFINED:
                bulk[where.replace(".", "/")] = int(length)
            continue
        out[key] = _element(ds, tag, vr, prefix, where, bulk)


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
    ds: Dataset, tag: Any, vr: str, prefix: str, where: str, bulk: dict[str, int]
) -> dict[str, Any]:
    try:
        elem = _converted(ds, tag)
    except Exception:
        # pydicom cannot interpret the value: keep its bytes, as UN, rather than fail the file.
        raw_value = getattr(ds.get_item(tag), "value", None) or b""
        if not raw_value:
            return {"vr": "UN"}
        return {"vr": "UN", "InlineBinary": base64.b64encode(bytes(raw_value)).decode()}
    if elem.VR == "SQ":
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
