"""The values QIDO-RS matches on, taken from a stored header (DICOM JSON) and normalised.

One function makes them at ingest and the same one backfills rows stored before the study and
series tables existed, so a query finds an old instance exactly as it finds a new one. The
values are normalised for matching, not for display (answers come from the stored header):

- PN: each component group (alphabetic, ideographic, phonetic) without trailing empty
  components, upper-cased, groups joined by ``=``; a second, "fuzzy" form also drops accents
  and folds compatibility forms (NFKD), for ``fuzzymatching=true``.
- TM: ``HHMMSS.FFFFFF`` (zero-padded), so times compare as strings whatever their precision.
- IS: an integer, or nothing when the value is not one.
- Multi-valued and in-sequence values: joined as ``\\A\\B\\`` so one value is a ``LIKE``.

``extra_key_values`` makes the rows of the keys ``DICOM_FS_EXTRA_QUERY_KEYS`` indexes: one
per value (of any item, for an attribute in a sequence), normalised the same way.

Text is cut to ``MAX_KEY`` characters: a hostile header must not make a row that an index
refuses.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

MAX_KEY = 256
_INT_RANGE = 2**53  # far beyond any IS (12 characters) and safe in every database


@dataclass(frozen=True)
class QueryKeys:
    """Column values of the study, series and instance rows for one stored instance."""

    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]


def query_keys(header: dict[str, Any]) -> QueryKeys:
    study_date = _text(header, "00080020")
    study_time = time_key(_text(header, "00080030") or "")
    study = {
        "study_instance_uid": _text(header, "0020000D"),
        "patient_name": _pn(header, "00100010", fuzzy=False),
        "patient_name_fuzzy": _pn(header, "00100010", fuzzy=True),
        "patient_id": _text(header, "00100020"),
        "study_date": study_date,
        "study_time": study_time,
        "study_datetime": (study_date + (study_time or "000000.000000")) if study_date else None,
        "accession_number": _text(header, "00080050"),
        "referring_physician_name": _pn(header, "00080090", fuzzy=False),
        "referring_physician_name_fuzzy": _pn(header, "00080090", fuzzy=True),
        "study_id": _text(header, "00200010"),
        "study_description": _text(header, "00081030"),
    }
    requests = _items(header, "00400275")
    series = {
        "series_instance_uid": _text(header, "0020000E"),
        "study_instance_uid": study["study_instance_uid"],
        "modality": _text(header, "00080060"),
        "series_number": _int(header, "00200011"),
        "series_description": _text(header, "0008103E"),
        "performed_procedure_step_start_date": _text(header, "00400244"),
        "performed_procedure_step_start_time": time_key(_text(header, "00400245") or ""),
        "scheduled_procedure_step_ids": _joined(_text(item, "00400009") for item in requests),
        "requested_procedure_ids": _joined(_text(item, "00401001") for item in requests),
    }
    instance = {"instance_number": _int(header, "00200013")}
    return QueryKeys(study, series, instance)


def pn_key(value: str, *, fuzzy: bool) -> str:
    """A person name (``A^B=C^D``) as stored for matching; also applied to query values."""
    groups = [g.rstrip("^ ").strip() for g in value.split("=")]
    while groups and not groups[-1]:
        groups.pop()
    text = "=".join(groups)
    if fuzzy:
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return text.upper()


def time_key(value: str, *, upper: bool = False) -> str | None:
    """A TM value as ``HHMMSS.FFFFFF``; missing precision filled with the earliest time, or
    with the latest when ``upper`` (the end of a range: ``1030`` ends at ``103059.999999``).
    None when it is not a time."""
    text = value.strip().replace(":", "")
    whole, _, fraction = text.partition(".")
    if (
        not whole.isdigit()
        or len(whole) not in (2, 4, 6)
        or not (fraction.isdigit() or not fraction)
    ):
        return None
    if len(fraction) > 6:
        return None
    whole += ("5959" if upper else "0000")[: 6 - len(whole)]
    return f"{whole}.{fraction.ljust(6, '9' if upper else '0')}"


NUMERIC_VRS = frozenset({"IS", "DS", "FL", "FD", "SS", "US", "SL", "UL", "SV", "UV"})


def elements_at(header: dict[str, Any], path: tuple[str, ...]) -> list[dict[str, Any]]:
    """The elements a tag path names: the top-level one, or the last tag's element in every
    item of the sequences along the path."""
    datasets = [header]
    for depth, tag in enumerate(path):
        elements = [e for e in (ds.get(tag) for ds in datasets) if isinstance(e, dict)]
        if depth == len(path) - 1:
            return elements
        datasets = [item for e in elements for item in _list(e) if isinstance(item, dict)]
    return []


def _list(element: dict[str, Any]) -> list[Any]:
    values = element.get("Value")
    return values if isinstance(values, list) else []


def pn_text(value: dict[str, Any]) -> str:
    """A DICOM JSON person name as ``alphabetic=ideographic=phonetic``."""
    return "=".join(str(value.get(g, "")) for g in ("Alphabetic", "Ideographic", "Phonetic"))


def number_text(value: Any) -> str | None:
    """A number as one spelling (``007`` and ``7.0`` are ``7``); None when not a number."""
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return str(int(number)) if number.is_integer() and abs(number) < _INT_RANGE else repr(number)


def extra_key_values(
    header: dict[str, Any], paths: tuple[tuple[str, ...], ...]
) -> list[tuple[str, str, str]]:
    """(tag path, form, value) for each value of each path in the header: ``form`` is
    ``value``, or ``fuzzy`` for a person name's accent-free form."""
    rows: list[tuple[str, str, str]] = []
    for path in paths:
        tag = ".".join(path)
        for element in elements_at(header, path):
            vr = element.get("vr")
            for value in _list(element):
                for form, text in _normalised(vr, value):
                    if text:
                        rows.append((tag, form, text[:MAX_KEY]))
    return list(dict.fromkeys(rows))


def _normalised(vr: Any, value: Any) -> list[tuple[str, str | None]]:
    if vr == "PN":
        if not isinstance(value, dict):
            return []
        text = pn_text(value)
        return [("value", pn_key(text, fuzzy=False)), ("fuzzy", pn_key(text, fuzzy=True))]
    if value is None or isinstance(value, (dict, list)) or vr in ("SQ", "UN"):
        return []
    if vr == "TM":
        return [("value", time_key(str(value)))]
    if vr in NUMERIC_VRS:
        return [("value", number_text(value))]
    return [("value", str(value).strip())]


def _values(header: dict[str, Any], key: str) -> list[Any]:
    element = header.get(key)
    if not isinstance(element, dict):
        return []
    values = element.get("Value")
    return values if isinstance(values, list) else []


def _text(header: dict[str, Any], key: str) -> str | None:
    values = [str(v).strip() for v in _values(header, key) if v is not None]
    text = "\\".join(v for v in values if v)
    return text[:MAX_KEY] if text else None


def _int(header: dict[str, Any], key: str) -> int | None:
    values = _values(header, key)
    try:
        number = int(str(values[0]).strip()) if values else None
    except ValueError:
        return None
    return number if number is not None and abs(number) < _INT_RANGE else None


def _pn(header: dict[str, Any], key: str, *, fuzzy: bool) -> str | None:
    names = []
    for value in _values(header, key):
        if isinstance(value, dict):
            groups = [str(value.get(g, "")) for g in ("Alphabetic", "Ideographic", "Phonetic")]
            names.append(pn_key("=".join(groups), fuzzy=fuzzy))
    text = "\\".join(n for n in names if n)
    return text[:MAX_KEY] if text else None


def _items(header: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [item for item in _values(header, key) if isinstance(item, dict)]


def _joined(values: Any) -> str | None:
    present = [v for v in values if v]
    if not present:
        return None
    text = "\\" + "\\".join(present) + "\\"
    return text[:MAX_KEY]
