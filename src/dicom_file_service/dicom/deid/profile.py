"""PS3.15 Table E.1-1, the Application Level Confidentiality Profile, as data.

``table_e1_1.csv`` is a machine-readable copy of the standard's table (its edition and source
in ``SOURCES.md`` beside it): one row per attribute or attribute pattern, with the Basic
Profile's action and each option's. The engine asks this module what to do with a tag under
the options chosen; nothing about which attribute gets which action lives in code.

Actions (PS3.15 E.1.1): X remove, Z empty or dummy, D dummy, K keep, C clean, U new UID, and
the combinations (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) the engine resolves.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass, field
from importlib import resources

from pydicom.datadict import dictionary_VR

OPTIONS: dict[str, tuple[str | None, str, str]] = {
    # option: (table column, CID 7050 code value, code meaning)
    "retain_safe_private": ("rtn_safe_priv", "113111", "Retain Safe Private Option"),
    "retain_uids": ("rtn_uids", "113110", "Retain UIDs Option"),
    "retain_device_identity": ("rtn_dev_id", "113109", "Retain Device Identity Option"),
    "retain_institution_identity": (
        "rtn_inst_id",
        "113112",
        "Retain Institution Identity Option",
    ),
    "retain_patient_characteristics": (
        "rtn_pat_chars",
        "113108",
        "Retain Patient Characteristics Option",
    ),
    "retain_longitudinal_full_dates": (
        "rtn_long_full_dates",
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    "retain_longitudinal_modified_dates": (
        "rtn_long_modif_dates",
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    "clean_descriptors": ("clean_desc", "113105", "Clean Descriptors Option"),
    "clean_structured_content": (
        "clean_struct_cont",
        "113104",
        "Clean Structured Content Option",
    ),
    "clean_graphics": ("clean_graph", "113103", "Clean Graphics Option"),
    "clean_pixel_data": (None, "113101", "Clean Pixel Data Option"),
}
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")


@dataclass(frozen=True)
class Rule:
    """One row of the table: the attribute (as the standard writes its tag), the Basic
    Profile's action and the options' actions where the table gives one."""

    tag: str
    name: str
    basic: str
    options: dict[str, str] = field(default_factory=dict)

    def action(self, chosen: frozenset[str]) -> str:
        """The action under the chosen options: an option's own action replaces the Basic
        Profile's; where two chosen options say different things, keeping (K) wins over
        cleaning (C), which wins over anything else (the options retain, they never remove
        more)."""
        said = {self.options[o] for o in chosen if o in self.options}
        for preferred in ("K", "C"):
            if preferred in said:
                return preferred
        return next(iter(sorted(said)), self.basic)


class Profile:
    """The table's rules by tag: exact tags, and masked ones (``(50xx,xxxx)``)."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self._exact: dict[int, Rule] = {}
        self._masked: list[tuple[int, int, Rule]] = []
        self._cleans: dict[frozenset[str], bool] = {}
        for rule in rules:
            mask_value = _mask(rule.tag)
            if mask_value is None:
                continue
            mask, value = mask_value
            if mask == 0xFFFFFFFF:
                self._exact[value] = rule
            else:
                self._masked.append((mask, value, rule))

    def cleans_text(self, chosen: frozenset[str]) -> bool:
        """Whether some attribute may be cleaned as text (C on anything but a date, time, UID
        or name, which are cleaned without reading text): only then is the instance's
        identifying text worth gathering."""
        known = self._cleans.get(chosen)
        if known is None:
            known = self._cleans[chosen] = any(
                rule.action(chosen) == "C" and _vr(rule.tag) not in _CLEANED_WITHOUT_TEXT
                for rule in self.rules
            )
        return known

    def rule(self, tag: int) -> Rule | None:
        found = self._exact.get(tag)
        if found is not None:
            return found
        for mask, value, rule in self._masked:
            if tag & mask == value:
                return rule
        return None


_CLEANED_WITHOUT_TEXT = ("DA", "DT", "TM", "UI", "PN")


def _vr(written: str) -> str | None:
    """The dictionary's VR of an exact tag (None for a masked one, or one it lacks)."""
    mask_value = _mask(written)
    if mask_value is None or mask_value[0] != 0xFFFFFFFF:
        return None
    try:
        return str(dictionary_VR(mask_value[1]))
    except KeyError:
        return None


def _mask(written: str) -> tuple[int, int] | None:
    """``(gggg,eeee)`` with x for any hex digit, as (mask, value); None for a row that names
    no tag pattern (private attributes in general, handled by the engine)."""
    text = written.strip().strip("()").replace(",", "")
    if len(text) != 8 or any(c not in "0123456789abcdefABCDEFxX" for c in text):
        return None
    mask = int("".join("0" if c in "xX" else "F" for c in text), 16)
    value = int("".join("0" if c in "xX" else c for c in text), 16)
    return mask, value


@functools.cache
def table_e1_1() -> Profile:
    """The profile as the repository's copy of the table gives it."""
    text = resources.files(__package__).joinpath("table_e1_1.csv").read_text("utf-8")
    rules = []
    for row in csv.DictReader(text.splitlines()):
        options = {
            option: row[column].strip()
            for option, (column, _, _) in OPTIONS.items()
            if column is not None and row.get(column, "").strip()
        }
        rules.append(Rule(row["tag"].strip(), row["name"].strip(), row["basic"].strip(), options))
    return Profile(rules)
