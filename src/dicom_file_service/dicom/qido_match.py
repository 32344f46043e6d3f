"""QIDO-RS matching on any attribute, judged on stored headers (DICOM JSON), not on columns.

A key outside the indexed set (a private tag, an attribute in a sequence, any standard
attribute without a column) is a ``HeaderCondition``. This module says, for one, what a
database can test on the JSON text of the values (``sql_form``: a filter that never drops a
match, so the database reads as few rows as possible), and the verdict on a header
(``header_matches``), the same PS3.4 C.2.2.2 rules as the indexed keys: single value,
wildcards ``*`` and ``?``, UID lists, date and time ranges, person names case-insensitive
(accent-insensitive with ``fuzzymatching``) on any of their component groups, and, for an
attribute in a sequence, any item. Values in headers are already decoded to Unicode, so a
name matches whatever character set its file was written in.

``extra_form`` is the same condition on the normalised values of ``query_keys.extra_key_values``
(the keys ``DICOM_FS_EXTRA_QUERY_KEYS`` indexes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from dicom_file_service.dicom.query_keys import (
    NUMERIC_VRS,
    elements_at,
    number_text,
    pn_key,
    pn_text,
    time_key,
)
from dicom_file_service.errors import InvalidParameter

# VRs whose values a database compares as they are stored (text, trimmed).
TEXT_VRS = frozenset({"AE", "AS", "CS", "LO", "LT", "SH", "ST", "UC", "UT", "UR", "UI", "DA"})
# VRs no value of a query can match: items, bytes.
UNMATCHABLE_VRS = frozenset({"SQ", "OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_DATE = re.compile(r"^\d{8}$")
_DATE_TIME = re.compile(r"^\d{4,14}(\.\d{1,6})?$")

SqlOp = Literal["equal", "like", "range"]


@dataclass(frozen=True)
class HeaderKey:
    """An attribute named by a query: as the request named it, its tag path (a top-level
    tag, or tags of sequences down to the attribute), and its dictionary VR (None: a private
    or unknown tag, judged by the VR its headers give it)."""

    name: str
    path: tuple[str, ...]
    vr: str | None

    @property
    def tag(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class HeaderCondition:
    key: HeaderKey
    value: str
    fuzzy: bool = False


@dataclass(frozen=True)
class SqlForm:
    """``equal``: a value is one of ``values``; ``like``: it matches one of the patterns
    (``!`` escapes); ``range``: ``low <= value <= high``, either end open (None)."""

    op: SqlOp
    values: tuple[str | None, ...]
    form: Literal["value", "fuzzy"] = "value"


def is_wild(value: str) -> bool:
    return "*" in value or "?" in value


def like_pattern(value: str) -> str:
    """A DICOM wildcard value as a LIKE pattern with ``!`` as the escape character."""
    escaped = value.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return escaped.replace("*", "%").replace("?", "_")


def header_condition(key: HeaderKey, value: str, fuzzy: bool) -> HeaderCondition:
    """The condition a key's value makes; 400 when no value of the attribute could match."""
    vr = key.vr
    if vr in UNMATCHABLE_VRS:
        raise InvalidParameter(f"{key.name}: a {vr} attribute cannot be matched on a value")
    if vr == "DA":
        _ends(key.name, value, lambda v: v if _DATE.match(v) else None, "a date (YYYYMMDD)")
    elif vr == "TM":
        _ends(key.name, value, time_key, "a time (HHMMSS.FFFFFF)")
    elif vr == "DT":
        _ends(key.name, value, lambda v: v if _DATE_TIME.match(v) else None, "a date-time")
    elif vr in NUMERIC_VRS and number_text(value) is None:
        raise InvalidParameter(f"{key.name}={value!r}: not a number")
    return HeaderCondition(key, value, fuzzy)


def _ends(name: str, value: str, parse: Any, what: str) -> tuple[str | None, str | None]:
    """The two ends of a value that may be a range (``A``, ``A-B``, ``-B``, ``A-``)."""
    low, sep, high = value.partition("-")
    if not sep:
        high = low
    low, high = low.strip(), high.strip()
    if not low and not high:
        raise InvalidParameter(f"{name}={value!r}: a range needs at least one end")
    for end in (low, high):
        if end and parse(end) is None:
            raise InvalidParameter(f"{name}={value!r}: not {what} or a range of them")
    return low or None, high or None


def sql_form(condition: HeaderCondition) -> SqlForm | None:
    """What a database can test on the stored text of the values; None: only that the
    attribute has a value (the verdict is ``header_matches``'s)."""
    vr, value = condition.key.vr, condition.value
    if vr not in TEXT_VRS:
        return None
    if vr == "UI":
        return SqlForm("equal", _uid_list(value))
    if vr == "DA":
        low, high = _ends(condition.key.name, value, lambda v: v, "a date")
        return SqlForm("equal", (low,)) if low == high else SqlForm("range", (low, high))
    if is_wild(value):
        return SqlForm("like", (like_pattern(value),))
    return SqlForm("equal", (value,))


def extra_form(condition: HeaderCondition) -> SqlForm:
    """The condition on the normalised values an extra-key index holds (exact)."""
    vr, value, name = condition.key.vr, condition.value, condition.key.name
    if vr == "PN":
        form: Literal["value", "fuzzy"] = "fuzzy" if condition.fuzzy else "value"
        key = pn_key(value, fuzzy=condition.fuzzy)
        if "=" in value:
            op: SqlOp = "like" if is_wild(key) else "equal"
            return SqlForm(op, (like_pattern(key) if op == "like" else key,), form)
        p = like_pattern(key)
        return SqlForm("like", (p, f"{p}=%", f"%={p}", f"%={p}=%"), form)
    if vr == "TM":
        low, high = _ends(name, value, time_key, "a time")
        return SqlForm("range", (time_key(low) if low else None, _upper_time(high)))
    if vr == "DT":  # stored as written: an end of any precision covers what it names
        low, high = _ends(name, value, lambda v: v, "a date-time")
        return SqlForm("range", (low, _latest_date_time(high) if high else None))
    if vr in NUMERIC_VRS:
        return SqlForm("equal", (number_text(value),))
    form_ = sql_form(condition)
    if form_ is not None:
        return form_
    return SqlForm("like", (like_pattern(value),)) if is_wild(value) else SqlForm("equal", (value,))


def _latest_date_time(value: str) -> str:
    """The last date-time a DT of this precision names, as text that sorts after them all
    (``2024`` → ``20249999999999.999999``)."""
    whole, dot, fraction = value.partition(".")
    return f"{whole.ljust(14, '9')}.{fraction.ljust(6, '9') if dot else '999999'}"


def _upper_time(value: str | None) -> str | None:
    return time_key(value, upper=True) if value else None


def _uid_list(value: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in re.split(r"[,\\]", value) if u.strip())


def header_matches(header: dict[str, Any], condition: HeaderCondition) -> bool:
    """Whether any value of the attribute, in any item of the sequences along its path,
    matches the condition."""
    return any(_value_matches(vr, value, condition) for vr, value in _values(header, condition.key))


def _values(header: dict[str, Any], key: HeaderKey) -> Iterator[tuple[str, Any]]:
    for element in elements_at(header, key.path):
        vr = str(element.get("vr") or key.vr or "UN")
        values = element.get("Value")
        if isinstance(values, list):
            for value in values:
                if value is not None:
                    yield vr, value


def _value_matches(vr: str, stored: Any, condition: HeaderCondition) -> bool:
    value = condition.value
    if vr == "PN":
        return isinstance(stored, dict) and _name_matches(pn_text(stored), condition)
    if isinstance(stored, (dict, list)) or vr in UNMATCHABLE_VRS:
        return False
    text = str(stored).strip()
    if vr == "UI":
        return text in _uid_list(value)
    if vr in ("DA", "DT", "TM"):
        return _in_range(vr, text, value)
    if vr in NUMERIC_VRS:
        wanted = number_text(value)
        return wanted is not None and number_text(text) == wanted
    if is_wild(value):
        return _wild(value).fullmatch(text) is not None
    return text == value


def _name_matches(stored: str, condition: HeaderCondition) -> bool:
    name = pn_key(condition.value, fuzzy=condition.fuzzy)
    key = pn_key(stored, fuzzy=condition.fuzzy)
    groups = [key] if "=" in condition.value else key.split("=")
    if is_wild(name):
        pattern = _wild(name)
        return any(pattern.fullmatch(g) for g in groups)
    return name in groups


def _in_range(vr: str, text: str, value: str) -> bool:
    low, sep, high = value.partition("-")
    if not sep:
        high = low
    low, high = low.strip(), high.strip()
    if vr == "TM":
        stored = time_key(text)
        start = time_key(low) if low else None
        end = time_key(high, upper=True) if high else None
        if stored is None:
            return False
        return (start is None or start <= stored) and (end is None or stored <= end)
    stored = text.split("+")[0].split("-")[0] if vr == "DT" else text
    # DT ends of any precision: compared on as many characters as they have.
    return (not low or low <= stored[: len(low)]) and (not high or stored[: len(high)] <= high)


def _wild(value: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
    return re.compile("".join(parts), re.DOTALL)
