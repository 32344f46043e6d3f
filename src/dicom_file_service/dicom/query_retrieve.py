"""Query/Retrieve identifiers (PS3.4 C.4): C-FIND as QIDO-RS queries and their matches as
C-FIND answers; C-MOVE and C-GET as the UIDs of what to send.

A C-FIND is the same search as QIDO-RS (PS3.18 10.6 defines QIDO-RS's matching by PS3.4's), so
the DICOM network's C-FIND is answered by the same query: each attribute of the identifier
with a value is a matching key (single value, UID list, wildcards, ranges, as PS3.4 C.2.2.2
says and ``dicom.qido`` implements), each without one a return key. The answer holds exactly
the identifier's attributes (PS3.4 C.4.1.1.3.2), filled from the match, empty where the match
has no value, plus the Query/Retrieve Level: DICOM JSON, which ``dicom.json_data_set`` writes
as the identifier's bytes.

The PATIENT level (Patient Root) has no QIDO-RS resource: it is answered from the study search,
one answer per Patient ID, with the Number of Patient Related Studies, Series and Instances
summed over that patient's studies.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from dicom_file_service.dicom.json_data_set import non_ascii
from dicom_file_service.dicom.qido import MATCHABLE, Level
from dicom_file_service.dicom.qido_returns import COMPUTED
from dicom_file_service.errors import InvalidParameter

FindLevel = Literal["PATIENT", "STUDY", "SERIES", "IMAGE"]
_QIDO_LEVEL: dict[FindLevel, Level] = {
    "PATIENT": "study",
    "STUDY": "study",
    "SERIES": "series",
    "IMAGE": "instance",
}
_ORDER: tuple[Level, ...] = ("study", "series", "instance")
_LEVEL_OF = {
    int(a.tag, 16): a.level
    for a in MATCHABLE
    if a.keyword != "ModalitiesInStudy" and "." not in a.tag
}

QUERY_RETRIEVE_LEVEL = 0x00080052
SPECIFIC_CHARACTER_SET = 0x00080005
RETRIEVE_AE_TITLE = 0x00080054
# Patient level: computed from the patient's studies (PS3.4 C.6.1.1.2).
PATIENT_STUDIES, PATIENT_SERIES, PATIENT_INSTANCES = 0x00201200, 0x00201202, 0x00201204
_STUDY_SERIES, _STUDY_INSTANCES = "00201206", "00201208"
_NOT_KEYS = {QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET, RETRIEVE_AE_TITLE}
_PATIENT_COUNTS = {PATIENT_STUDIES, PATIENT_SERIES, PATIENT_INSTANCES}
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}


@dataclass
class FindQuery:
    """The QIDO-RS search a C-FIND identifier asks for."""

    level: FindLevel
    qido_level: Level
    params: list[tuple[str, str]] = field(default_factory=list)
    returned: list[DataElement] = field(default_factory=list)  # the identifier's, in order

    @functools.cached_property
    def plan(self) -> list[tuple[str, str, bool]]:
        """Each returned attribute's hex tag, the VR the identifier gave it, and whether the
        query's level answers it (a lower level's key is returned empty)."""
        return [
            (f"{int(e.tag):08X}", e.VR, _at_or_above(int(e.tag), self.qido_level))
            for e in self.returned
        ]

    @property
    def returned_keys(self) -> list[str]:
        """The attributes (hex tags) the answers need from each match: the identifier's, and
        for PATIENT-level answers the Patient ID that groups them and the study counts that
        add up to the patient's."""
        keys = [f"{int(e.tag):08X}" for e in self.returned]
        if self.level == "PATIENT":
            return [*keys, "00100020", _STUDY_SERIES, _STUDY_INSTANCES]
        return keys


def find_query(identifier: Dataset) -> FindQuery:
    """The search ``identifier`` asks for; ``InvalidParameter`` when it cannot be one (no or
    an unknown Query/Retrieve Level, a key of a lower level with a value)."""
    level = query_retrieve_level(identifier, ("PATIENT", "STUDY", "SERIES", "IMAGE"))
    query = FindQuery(level, _QIDO_LEVEL[level])
    computed = {int(t, 16) for t in COMPUTED} | _PATIENT_COUNTS
    for element in identifier:
        tag = int(element.tag)
        if tag == RETRIEVE_AE_TITLE:
            query.returned.append(element)  # answered with the archive's own
            continue
        if tag in _NOT_KEYS or element.tag.group in (0x0000, 0x0002):
            continue
        query.returned.append(element)
        if not _at_or_above(tag, query.qido_level):
            if _has_value(element):
                raise InvalidParameter(
                    f"{element.keyword or element.tag}: a key of a lower level than "
                    f"{level} cannot be matched"
                )
            continue
        if tag in computed and tag != 0x00080061:  # ModalitiesInStudy is matched
            continue
        query.params.extend(_params(element))
    if level == "PATIENT":
        query.params += [("includefield", _STUDY_SERIES), ("includefield", _STUDY_INSTANCES)]
    return query


def query_retrieve_level(identifier: Dataset, allowed: Iterable[str]) -> FindLevel:
    value = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if value not in allowed:
        raise InvalidParameter(
            f"Query/Retrieve Level {value!r}: not one of {', '.join(allowed)}"
            if value
            else "the identifier has no (0008,0052) Query/Retrieve Level"
        )
    return value  # type: ignore[return-value]


def _at_or_above(tag: int, level: Level) -> bool:
    own = _LEVEL_OF.get(tag)
    return own is None or _ORDER.index(own) <= _ORDER.index(level)


def _has_value(element: DataElement) -> bool:
    if element.VR == "SQ":
        return any(_has_value(e) for item in element.value for e in item)
    return not element.is_empty


def _params(element: DataElement, prefix: str = "") -> list[tuple[str, str]]:
    name = f"{prefix}{int(element.tag):08X}"
    if element.VR == "SQ":
        inner = [p for item in element.value for e in item for p in _params(e, f"{name}.")]
        matched = [p for p in inner if p[1]]
        return matched if matched else [("includefield", name)] if not prefix else []
    if element.is_empty or element.VR in _BINARY_VRS:
        return [("includefield", name)] if not prefix else []
    return [(name, text_of(element.value))]


def text_of(value: Any) -> str:
    """A value as QIDO-RS takes it: multiple values joined by backslash (a UID list)."""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(text_of(v) for v in value)
    if isinstance(value, PersonName):
        return str(value)
    return str(value).strip()


def answer(query: FindQuery, match: dict[str, Any], *, ae_title: str) -> dict[str, Any]:
    """The C-FIND answer for one QIDO-RS ``match`` (DICOM JSON): the identifier's attributes,
    as DICOM JSON (``dicom.json_data_set`` writes it)."""
    out: dict[str, Any] = {_QR_LEVEL_KEY: {"vr": "CS", "Value": [query.level]}}
    for key, vr, answerable in query.plan:
        found = match.get(key) if answerable else None
        out[key] = _as_requested(found, vr) if found is not None else {"vr": vr}
    if _RETRIEVE_AE_KEY in out:
        out[_RETRIEVE_AE_KEY] = {"vr": "AE", "Value": [ae_title]}
    if non_ascii(out):
        out[_CHARSET_KEY] = {"vr": "CS", "Value": ["ISO_IR 192"]}
    return out


_QR_LEVEL_KEY, _RETRIEVE_AE_KEY, _CHARSET_KEY = "00080052", "00080054", "00080005"


def _as_requested(found: dict[str, Any], requested_vr: str) -> dict[str, Any]:
    """The found attribute, with the VR the identifier gave where the dictionary has several."""
    vr = found.get("vr")
    if vr == requested_vr or requested_vr in ("UN", "SQ") or vr == "SQ":
        return found
    return {**found, "vr": requested_vr}


def patient_answers(
    query: FindQuery, studies: Iterable[dict[str, Any]], *, ae_title: str
) -> Iterator[dict[str, Any]]:
    """PATIENT-level answers from the patient's matching studies, one per Patient ID (in the
    order of their first study), with the patient's related counts."""
    patients: dict[str, tuple[dict[str, Any], list[int]]] = {}
    for study in studies:
        pid = text_of(study.get("00100020", {}).get("Value", [""])[0] or "")
        first, counts = patients.setdefault(pid, (study, [0, 0, 0]))
        counts[0] += 1
        counts[1] += _number(study, _STUDY_SERIES)
        counts[2] += _number(study, _STUDY_INSTANCES)
    for first, counts in patients.values():
        attributes = answer(query, first, ae_title=ae_title)
        for tag, count in zip(
            (PATIENT_STUDIES, PATIENT_SERIES, PATIENT_INSTANCES), counts, strict=True
        ):
            key = f"{tag:08X}"
            if key in attributes:
                attributes[key] = {"vr": "IS", "Value": [count]}
        yield attributes


def _number(match: dict[str, Any], tag: str) -> int:
    try:
        return int(match.get(tag, {}).get("Value", [0])[0])
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class RetrieveKeys:
    """What a C-MOVE or C-GET asks for: the UIDs (or Patient IDs) of its level's unique key,
    and the unique keys above it where given."""

    level: FindLevel
    values: tuple[str, ...]
    study: str | None = None
    series: str | None = None


_UNIQUE = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}


def retrieve_keys(identifier: Dataset) -> RetrieveKeys:
    """The instances a C-MOVE or C-GET identifier names (PS3.4 C.4.2.2.1, C.4.3.2.1): its
    level's unique key, one value or a list; ``InvalidParameter`` when it has none."""
    level = query_retrieve_level(identifier, _UNIQUE)
    keyword = _UNIQUE[level]
    raw = identifier.get(keyword)
    values = [v for v in text_of(raw if raw is not None else "").split("\\") if v.strip()]
    if not values:
        raise InvalidParameter(f"a {level} retrieve names no {keyword}")
    if level != "PATIENT" and any("*" in v or "?" in v for v in values):
        raise InvalidParameter(f"{keyword}: a retrieve names UIDs, not patterns")
    study = text_of(identifier.get("StudyInstanceUID", "") or "") or None
    series = text_of(identifier.get("SeriesInstanceUID", "") or "") or None
    return RetrieveKeys(
        level,
        tuple(dict.fromkeys(v.strip() for v in values)),
        study if level in ("SERIES", "IMAGE") and study and "\\" not in study else None,
        series if level == "IMAGE" and series and "\\" not in series else None,
    )
