"""QIDO-RS queries (PS3.18 10.6): what a query string asks for, as conditions on query keys.

This module knows DICOM matching (PS3.4 C.2.2.2) and nothing of SQL or HTTP: it turns
``PatientName=doe*&StudyDate=20240101-20240131&includefield=00081030&limit=10`` into
conditions on the normalised values of ``query_keys`` and a list of attributes to return.
Conditions name attributes and levels, never where they are stored (``index.qido`` does).
Patterns use ``%`` and ``_`` as wildcards with ``!`` as the escape character (what a
database's ``LIKE ... ESCAPE '!'`` takes).

Matching kinds: single value, UID list (``,`` or ``\\``), wildcards ``*`` and ``?`` (PN
case-insensitive, and accent-insensitive with ``fuzzymatching=true``; a PN value without ``=``
matches any of the name's component groups), ranges of dates and times (open at either end;
StudyDate with StudyTime is matched as one date-time range), and sequence matching for the
Request Attributes Sequence. Any other attribute (private tags as 8 hex digits, attributes in
sequences as dotted paths, PS3.18 8.3.4.1) is a ``HeaderCondition`` (``dicom.qido_match``),
answered from stored headers. A key that cannot be matched (no such keyword, a malformed
tag, an indexed key of a lower level than the query's, a value no such attribute could have)
is refused, naming it: never ignored, so an answer is never every instance by mistake.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from pydicom.datadict import dictionary_VR, tag_for_keyword

from dicom_file_service.dicom.qido_match import (
    UNMATCHABLE_VRS,
    HeaderCondition,
    HeaderKey,
    header_condition,
    is_wild,
    like_pattern,
)
from dicom_file_service.dicom.query_keys import pn_key, time_key
from dicom_file_service.errors import InvalidParameter

Level = Literal["study", "series", "instance"]
LEVELS: tuple[Level, ...] = ("study", "series", "instance")
Kind = Literal["uid", "text", "pn", "date", "time", "int", "items"]


@dataclass(frozen=True)
class Attribute:
    """A matching key: the level whose rows hold its normalised value, and its kind."""

    keyword: str
    tag: str
    level: Level
    kind: Kind


def _attr(keyword: str, level: Level, kind: Kind, tag: str | None = None) -> Attribute:
    found = tag_for_keyword(keyword)
    return Attribute(keyword, tag or f"{found:08X}", level, kind)


# PS3.18 Table 10.6.1-5, plus StudyDescription and SeriesDescription that viewers search on.
MATCHABLE: tuple[Attribute, ...] = (
    _attr("StudyInstanceUID", "study", "uid"),
    _attr("PatientName", "study", "pn"),
    _attr("PatientID", "study", "text"),
    _attr("StudyDate", "study", "date"),
    _attr("StudyTime", "study", "time"),
    _attr("AccessionNumber", "study", "text"),
    _attr("ReferringPhysicianName", "study", "pn"),
    _attr("StudyID", "study", "text"),
    _attr("StudyDescription", "study", "text"),
    _attr("ModalitiesInStudy", "series", "text"),  # matched on each series' Modality
    _attr("SeriesInstanceUID", "series", "uid"),
    _attr("Modality", "series", "text"),
    _attr("SeriesNumber", "series", "int"),
    _attr("SeriesDescription", "series", "text"),
    _attr("PerformedProcedureStepStartDate", "series", "date"),
    _attr("PerformedProcedureStepStartTime", "series", "time"),
    _attr("ScheduledProcedureStepID", "series", "items", "00400275.00400009"),
    _attr("RequestedProcedureID", "series", "items", "00400275.00401001"),
    _attr("SOPClassUID", "instance", "uid"),
    _attr("SOPInstanceUID", "instance", "uid"),
    _attr("InstanceNumber", "instance", "int"),
)
_BY_TAG = {a.tag: a for a in MATCHABLE}
_SEQUENCE_KEYWORDS = {"RequestAttributeSequence": "00400275"}  # PS3.18 Table 10.6.1-5 spelling

Op = Literal["equal", "like", "range"]
Key = Literal["value", "fuzzy", "date_time"]


@dataclass(frozen=True)
class Condition:
    """One matching condition on one normalised key of an attribute.

    ``key``: the attribute's normalised value (``value``), a PN's accent-free form for
    ``fuzzymatching`` (``fuzzy``), or StudyDate with StudyTime as one date-time
    (``date_time``, PS3.4 C.2.2.2.5.1). ``equal``: the key equals one of ``values``; ``like``:
    it matches one of the ``values`` patterns; ``range``: ``low <= key <= high`` with either
    end open (None).
    """

    attribute: Attribute
    op: Op
    values: tuple[str | int | None, ...]
    key: Key = "value"


@dataclass
class Query:
    level: Level
    conditions: list[Condition] = field(default_factory=list)
    include: list[str] = field(default_factory=list)  # tags to return beyond the defaults
    include_all: bool = False
    limit: int | None = None
    offset: int = 0
    fuzzy: bool = False
    # Keys of no index column: matched on stored headers.
    header_conditions: list[HeaderCondition] = field(default_factory=list)


_CONTROL = {"limit", "offset", "fuzzymatching", "includefield"}
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_DATE = re.compile(r"^\d{8}$")


def parse_query(params: Iterable[tuple[str, str]], level: Level) -> Query:
    """The query a QIDO-RS request's parameters make at ``level``; 400 on a malformed value."""
    pairs = list(params)
    query = Query(level)
    for name, value in pairs:
        if name == "fuzzymatching":
            query.fuzzy = _boolean(name, value)
    matches: dict[str, tuple[Attribute, str]] = {}
    for name, value in pairs:
        if name in ("limit", "offset"):
            number = _count(name, value)
            if name == "limit":
                query.limit = number
            else:
                query.offset = number
        elif name == "includefield":
            for item in filter(None, (v.strip() for v in value.split(","))):
                if item.lower() == "all":
                    query.include_all = True
                else:  # a sequence path returns its whole top-level sequence
                    query.include.append(resolve_key(item).path[0])
        elif name not in _CONTROL:
            _match_key(query, name, value, matches)
    query.conditions.extend(_conditions(matches, query.fuzzy))
    return query


def _match_key(
    query: Query, name: str, value: str, matches: dict[str, tuple[Attribute, str]]
) -> None:
    key = resolve_key(name)
    attribute = _BY_TAG.get(key.tag)
    query.include.append(key.path[0])
    if attribute is None:
        if value.strip():  # an empty value is universal matching: return the key, match all
            query.header_conditions.append(header_condition(key, value.strip(), query.fuzzy))
        return
    if not _matchable(attribute, query.level):
        where = "study" if attribute.keyword == "ModalitiesInStudy" else attribute.level
        searched = {"study": "studies", "series": "series", "instance": "instances"}
        raise InvalidParameter(
            f"{name}: a key of {where} level, which a search for {searched[query.level]} "
            "cannot match"
        )
    if value.strip():
        matches[attribute.tag] = (attribute, value.strip())


def _matchable(attribute: Attribute, level: Level) -> bool:
    """Keys of the level and the levels above it; ModalitiesInStudy at study level only."""
    if attribute.keyword == "ModalitiesInStudy":
        return level == "study"
    return LEVELS.index(attribute.level) <= LEVELS.index(level)


def resolve_key(name: str) -> HeaderKey:
    """A key (``PatientName``, ``00100010``, ``00091001``, ``ReferencedStudySequence.
    ReferencedSOPInstanceUID`` or ``00400275.00401001``) as a tag path with its dictionary VR;
    400 when it names nothing, or a path goes through an attribute that is not a sequence."""
    parts = []
    for i, part in enumerate(name.split(".")):
        if _TAG.match(part):
            parts.append(part.upper())
            continue
        keyword = _SEQUENCE_KEYWORDS.get(part) if i == 0 and "." in name else None
        found = tag_for_keyword(part)
        if keyword is None and found is None:
            raise InvalidParameter(
                f"{name}: not an attribute keyword, a tag of 8 hex digits, or a dotted path "
                "of them through sequences"
            )
        parts.append(keyword or f"{found:08X}")
    vrs = [_vr(p) for p in parts]
    for part, vr in zip(parts[:-1], vrs[:-1], strict=True):
        if vr is not None and vr != "SQ":
            raise InvalidParameter(f"{name}: {part} is not a sequence")
    if int(parts[-1][4:], 16) == 0:
        raise InvalidParameter(f"{name}: a group length cannot be matched or returned")
    return HeaderKey(name, tuple(parts), vrs[-1])


@lru_cache(maxsize=8)
def extra_query_keys(setting: str) -> tuple[HeaderKey, ...]:
    """The keys ``DICOM_FS_EXTRA_QUERY_KEYS`` names (comma-separated), for their own index;
    400 (a configuration error) for one that names nothing or is indexed already."""
    keys = []
    for name in filter(None, (n.strip() for n in setting.split(","))):
        key = resolve_key(name)
        if key.tag in _BY_TAG:
            raise InvalidParameter(f"{name}: indexed already")
        if key.vr in UNMATCHABLE_VRS:
            raise InvalidParameter(f"{name}: a {key.vr} attribute has no values to index")
        keys.append(key)
    return tuple({key.tag: key for key in keys}.values())


def _vr(tag: str) -> str | None:
    """The dictionary VR of a tag (one of several: the first), None for a private one."""
    try:
        vr = dictionary_VR(int(tag, 16))
    except KeyError:
        return None
    return vr.split(" or ")[0] if vr else None


def _conditions(matches: dict[str, tuple[Attribute, str]], fuzzy: bool) -> list[Condition]:
    date = matches.pop("00080020", None)
    time = matches.pop("00080030", None)
    out = []
    if date and time:
        out.append(_date_time(date[1], time[1]))
    elif date:
        out.append(_condition(*date, fuzzy))
    elif time:
        out.append(_condition(*time, fuzzy))
    out.extend(_condition(attribute, value, fuzzy) for attribute, value in matches.values())
    return out


def _condition(attribute: Attribute, value: str, fuzzy: bool) -> Condition:
    kind = attribute.kind
    if kind == "uid" or attribute.keyword == "ModalitiesInStudy":  # lists of values
        values = tuple(u.strip() for u in re.split(r"[,\\]", value) if u.strip())
        if kind != "uid" and any(_is_wild(v) for v in values):
            return Condition(attribute, "like", tuple(map(_pattern, values)))
        return Condition(attribute, "equal", values)
    if kind == "date":
        low, high = _range(attribute, value, _date)
        return Condition(attribute, "range", (low, high))
    if kind == "time":
        low, high = _time_range(attribute, value)
        return Condition(attribute, "range", (low, high))
    if kind == "int":
        try:
            return Condition(attribute, "equal", (int(value),))
        except ValueError:
            raise InvalidParameter(f"{attribute.keyword}={value!r}: not an integer") from None
    if kind == "pn":
        return _person_name(attribute, value, fuzzy)
    if kind == "items":
        return Condition(attribute, "like", (f"%\\{_pattern(value)}\\%",))
    if _is_wild(value):
        return Condition(attribute, "like", (_pattern(value),))
    return Condition(attribute, "equal", (value,))


def _person_name(attribute: Attribute, value: str, fuzzy: bool) -> Condition:
    form: Key = "fuzzy" if fuzzy else "value"
    name = pn_key(value, fuzzy=fuzzy)
    if "=" in value:  # component groups named: match the whole name
        if _is_wild(name):
            return Condition(attribute, "like", (_pattern(name),), form)
        return Condition(attribute, "equal", (name,), form)
    # One group's value: any of the stored name's groups may match it.
    p = _pattern(name)
    return Condition(attribute, "like", (p, f"{p}=%", f"%={p}", f"%={p}=%"), form)


_is_wild = is_wild
_pattern = like_pattern


def _range(
    attribute: Attribute, value: str, parse: Callable[[Attribute, str], str]
) -> tuple[str | None, str | None]:
    if "-" not in value:
        single = parse(attribute, value)
        return single, single
    low, _, high = value.partition("-")
    if not low.strip() and not high.strip():
        raise InvalidParameter(f"{attribute.keyword}={value!r}: a range needs at least one end")
    return (
        parse(attribute, low) if low.strip() else None,
        parse(attribute, high) if high.strip() else None,
    )


def _date(attribute: Attribute, value: str) -> str:
    text = value.strip()
    if not _DATE.match(text):
        raise InvalidParameter(
            f"{attribute.keyword}={value!r}: not a date (YYYYMMDD) or date range (A-B, -B, A-)"
        )
    return text


def _time_range(attribute: Attribute, value: str) -> tuple[str | None, str | None]:
    low, sep, high = value.partition("-")
    if not sep:
        low = high = value
    if not low.strip() and not high.strip():
        raise InvalidParameter(f"{attribute.keyword}={value!r}: a range needs at least one end")
    start = time_key(low) if low.strip() else None
    end = time_key(high, upper=True) if high.strip() else None
    if (low.strip() and start is None) or (high.strip() and end is None):
        raise InvalidParameter(
            f"{attribute.keyword}={value!r}: not a time (HHMMSS.FFFFFF) or time range"
        )
    return start, end


def _date_time(date: str, time: str) -> Condition:
    """StudyDate with StudyTime: one range of date-times (PS3.4 C.2.2.2.5.1)."""
    attribute = _BY_TAG["00080020"]
    d_low, d_high = _range(attribute, date, _date)
    t_low, t_high = _time_range(_BY_TAG["00080030"], time)
    low = d_low + (t_low or "000000.000000") if d_low else None
    high = d_high + (t_high or "235959.999999") if d_high else None
    return Condition(attribute, "range", (low, high), "date_time")


def _boolean(name: str, value: str) -> bool:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidParameter(f"{name}={value!r}: use true or false")


def _count(name: str, value: str) -> int:
    if not value.isdigit():
        raise InvalidParameter(f"{name}={value!r}: not a non-negative integer")
    return int(value)
